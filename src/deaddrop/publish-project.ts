import {PsyError} from '../errors.js';
import type {BuildLogger} from '../engine/events.js';
import {parseSigningSettings, resolveSecretKey} from '../sign/key-source.js';
import {loadProjectSettings} from './project.js';
import {publishToReplica, type PublishArtifact, type PublishResult} from './publish.js';
import {checkBucket, createS3Client} from './s3-client.js';
import {parseDeaddropSettings, type DeaddropSettings, type TargetRef} from './settings.js';
import {push, type SyncProgress, type SyncResult} from './sync.js';

export interface PublishProjectOptions {
  readonly cwd: string;
  readonly configPath?: string | undefined;
  readonly env: NodeJS.ProcessEnv;
  /** Build stale targets first (default true). */
  readonly build?: boolean;
  /** Push to S3 when a bucket is configured (default true). */
  readonly sync?: boolean;
  readonly jobs?: number | undefined;
  readonly prompt?: ((q: string) => Promise<string>) | undefined;
  readonly log: (line: string) => void;
  readonly warn: (line: string) => void;
  readonly buildLogger?: BuildLogger;
  readonly signal?: AbortSignal;
  /** Called after each durable step of the replica publish and of the push. */
  readonly onStep?: (step: string) => void | Promise<void>;
  readonly onProgress?: (p: SyncProgress) => void;
}

export interface PublishProjectResult {
  readonly settings: DeaddropSettings;
  readonly publish: PublishResult;
  readonly sync: SyncResult | undefined;
  readonly developmentKey: boolean;
}

function outputOf(outputs: Readonly<Record<string, Readonly<Record<string, string>>>>, ref: TargetRef, what: string): string {
  const o = outputs[ref.target];
  if (o === undefined) throw new PsyError('bad-config', `settings.deaddrop.${what}: target '${ref.target}' has no outputs (is it defined?)`);
  const names = Object.keys(o);
  const name = ref.output ?? (names.length === 1 ? names[0] : undefined);
  if (name === undefined) {
    throw new PsyError('bad-config', `settings.deaddrop.${what}: target '${ref.target}' has outputs ${names.join(', ')}; name one with 'output'`);
  }
  const path = o[name];
  if (path === undefined) throw new PsyError('bad-config', `settings.deaddrop.${what}: target '${ref.target}' has no output '${name}'`);
  return path;
}

/**
 * `psy publish`: check everything that can fail early (settings, signing key and its
 * password, the bucket), build what is stale, publish into the replica, push.
 */
export async function publishProject(opts: PublishProjectOptions): Promise<PublishProjectResult> {
  const project = await loadProjectSettings(opts.cwd, opts.configPath, true);
  const settings = parseDeaddropSettings(project.settings['deaddrop'], project.root);
  if (settings.ostar.length === 0 && settings.esptar.length === 0 && settings.apk === undefined) {
    throw new PsyError('bad-config', 'settings.deaddrop names nothing to publish (ostar, esptar or apk)');
  }
  const key = await resolveSecretKey({
    root: project.root,
    settings: parseSigningSettings(project.settings['signing']),
    env: opts.env,
    prompt: opts.prompt,
    warn: opts.warn,
  });
  const s3 = opts.sync !== false ? settings.s3 : undefined;
  const client = s3 !== undefined ? createS3Client(s3, opts.env) : undefined;
  if (s3 !== undefined && client !== undefined) await checkBucket(client, s3);

  const targets = [...settings.ostar, ...settings.esptar, ...(settings.apk ? [settings.apk] : [])].map((t) => t.target);
  const {build} = await import('../engine/build.js');
  const result = await build({
    cwd: opts.cwd,
    ...(opts.configPath === undefined ? {} : {configPath: opts.configPath}),
    targets,
    dryRun: opts.build === false,
    env: opts.env,
    ...(opts.jobs === undefined ? {} : {jobs: opts.jobs}),
    ...(opts.buildLogger === undefined ? {} : {logger: opts.buildLogger}),
    ...(opts.signal === undefined ? {} : {signal: opts.signal}),
  });
  if (opts.build === false && result.wouldRun.length > 0) {
    throw new PsyError('stale', `--no-build, but these targets are stale: ${result.wouldRun.map((w) => w.target).join(', ')}`);
  }
  if (!result.ok) {
    if (result.interrupted) throw new PsyError('interrupted', 'build interrupted; nothing published');
    throw new PsyError('build-failed', `build failed (${result.failed.map((f) => f.target).join(', ')}); nothing published`);
  }
  const artifacts: PublishArtifact[] = [
    ...settings.ostar.map((o, i): PublishArtifact => ({
      kind: 'psyopsOS',
      id: o.arch,
      path: outputOf(result.outputs, o, `ostar[${i}]`),
      source: o.target,
      fields: {...o.fields, architecture: o.architecture},
    })),
    ...settings.esptar.map((e, i): PublishArtifact => ({
      kind: 'psyopsESP',
      id: e.platform,
      path: outputOf(result.outputs, e, `esptar[${i}]`),
      source: e.target,
      fields: e.fields,
    })),
  ];
  const publish = await publishToReplica({
    root: settings.root,
    artifacts,
    apkRepository: settings.apk ? outputOf(result.outputs, settings.apk, 'apk') : undefined,
    keep: settings.keep,
    secretKey: key.secretKey,
    publicKey: key.publicKey,
    log: opts.log,
    ...(opts.onStep === undefined ? {} : {onStep: opts.onStep}),
  });
  let sync: SyncResult | undefined;
  if (s3 !== undefined && client !== undefined) {
    sync = await push({
      root: settings.root,
      s3,
      client,
      ...(opts.onStep === undefined ? {} : {onStep: (s: string) => opts.onStep!(`push:${s}`)}),
      ...(opts.onProgress === undefined ? {} : {onProgress: opts.onProgress}),
    });
  }
  return {settings, publish, sync, developmentKey: key.development};
}
