/**
 * Alpine packages without apk-tools: read, verify, resolve, lock, install and build
 * APK v2 packages and repositories. The public surface for rules and commands.
 */
export {readApk, q1, SCRIPT_NAMES, type ApkPackage, type ReadApkOptions, type ScriptName} from './apk-package.js';
export {buildApk, type ApkDataEntry, type BuildApkInput, type BuiltApk} from './apk-writer.js';
export {readApkIndex, writeApkIndex, parseIndexText, formatIndexText, type ApkIndex} from './apkindex.js';
export {compareVersions, isValidVersion} from './version.js';
export {parseDependency, parseDependencies, formatDependency, versionMatches, type Dependency} from './dependency.js';
export {resolve, checkPackageSet, type ResolvedPackage, type ResolverRepository} from './resolver.js';
export {RepositoryClient, parseRepositoryLine, type RepositorySpec} from './repository.js';
export {readLock, writeLock, formatLock, type AlpineLock, type LockedPackage} from './lockfile.js';
export {validateAlpineSettings, defineAlpineSettings, DEFAULT_LOCKFILE, type AlpineSettings} from './settings.js';
export {installPackages, type InstallOptions, type InstallResult, type SkippedScript} from './installer.js';
export {readManifest, writeManifest, manifestToPseudoFile, type RootfsManifest, type ManifestEntry} from './manifest.js';
export {loadKeyring, generateSigningKey, keyringFromPem, type Keyring, type SigningKey} from './keys.js';
export {indexRepository} from './repository-index.js';
export {lockWorld, checkLock, installFromLock, lockSettingsProblems, openRepositories, type AlpineContext, type InstallFromLockOptions} from './alpine-root.js';
export type {AccountsSpec, UserSpec, GroupSpec} from './script-effects.js';
export {buildRepository, buildDeclaredPackage, readPackageDeclaration, loadSigningKey, type PackageDeclaration} from './package-builder.js';
