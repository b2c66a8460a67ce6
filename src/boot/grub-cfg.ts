/**
 * The static GRUB configuration of a psyopsOS ESP and the names it relies on.
 *
 * The boot choice never lives in grub.cfg: it lives in the GRUB environment block
 * (`/grubenv` on the ESP, with a mirror `/grubenv.mirror` holding only the known-good
 * slot). grub.cfg is written once per ESP version and never edited in place.
 *
 * Variables (all values are slot labels, `psyopsOS-A` or `psyopsOS-B`):
 *   psyopsos_default  the known-good slot; written by `set-default` / `mark-good`
 *   psyopsos_try      a slot to boot ONCE; written by `apply`, spent by GRUB itself
 *                     (set to empty and saved with save_env) before it boots that slot
 *   psyopsos_hwm      version high-water mark (not read by GRUB; anti-rollback floor)
 *
 * Rules the script follows (src/boot/resolve.ts models them exactly):
 *   1. default: /grubenv's psyopsos_default if it names a slot; otherwise the mirror's;
 *      otherwise psyopsOS-A (a damaged or missing block boots the known-good slot).
 *   2. try: only from a valid /grubenv, only if it names the other slot. GRUB empties
 *      it, saves, and reads it back; the new slot boots only if the empty value is on
 *      disk (a GRUB that cannot write the block never loops on an untried slot).
 *   3. the kernel gets `panic=N`: a slot that panics reboots into the default.
 *   4. GRUB's `fallback` is the other slot: a slot whose kernel cannot be loaded (its
 *      filesystem is being rewritten, so its label is gone) falls through at once.
 */

export type SlotName = 'A' | 'B';
export const SLOTS: readonly SlotName[] = ['A', 'B'];
export type SlotLabel = 'psyopsOS-A' | 'psyopsOS-B';

export const ESP_LABEL = 'PSYOPSOSEFI';
export const SECRET_LABEL = 'psyops-secret';
export function slotLabel(slot: SlotName): SlotLabel {
  return `psyopsOS-${slot}`;
}
export function slotFromLabel(label: string): SlotName | undefined {
  return label === 'psyopsOS-A' ? 'A' : label === 'psyopsOS-B' ? 'B' : undefined;
}
export function otherSlot(slot: SlotName): SlotName {
  return slot === 'A' ? 'B' : 'A';
}

/** Where the environment block and its mirror live on the ESP (paths from the ESP root). */
export const GRUBENV_PATH = '/grubenv';
export const GRUBENV_MIRROR_PATH = '/grubenv.mirror';
/** The firmware's removable-media path: the one file whose rename switches ESP versions. */
export const EFI_BOOT_PATH = '/EFI/BOOT/BOOTX64.EFI';
/** grub.cfg sits in a per-version directory `/grub-<id>/` named by BOOTX64.EFI's prefix. */
export const GRUB_DIR_PREFIX = 'grub-';
/** The slot GRUB boots when neither environment copy names one. */
export const FALLBACK_DEFAULT: SlotName = 'A';

export const ENV_DEFAULT = 'psyopsos_default';
export const ENV_TRY = 'psyopsos_try';
export const ENV_HWM = 'psyopsos_hwm';

/**
 * Modules built into BOOTX64.EFI (grub-mkimage). All of them, so grub.cfg never needs
 * insmod and a grub.cfg of one ESP version works with the GRUB of another.
 * loadenv: load_env/save_env; test: `[ ]`; search*: find slots by label.
 */
export const GRUB_MODULES: readonly string[] = [
  'part_gpt',
  'part_msdos',
  'fat',
  'ext2',
  'normal',
  'configfile',
  'linux',
  'search',
  'search_label',
  'search_fs_uuid',
  'search_fs_file',
  'echo',
  'test',
  'true',
  'serial',
  'terminal',
  'efi_gop',
  'all_video',
  'gzio',
  'loadenv',
  'halt',
  'reboot',
  'sleep',
  'ls',
  'cat',
  'chain',
];

export interface GrubCfgOptions {
  /** Menu timeout in seconds (default 2). */
  readonly timeoutSec?: number;
  /** Seconds after a kernel panic before the machine reboots (default 10). */
  readonly panicRebootSec?: number;
  /** Extra kernel arguments appended to every slot entry. */
  readonly kernelArgs?: string;
  /** EFI programs in the grub directory offered as menu entries: file name → title. */
  readonly extraPrograms?: Readonly<Record<string, string>>;
}

function quote(s: string): string {
  // GRUB script single quotes: no escapes inside, so close-escape-reopen for a quote.
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function validSlotTest(variable: string, then: string[], indent: string): string[] {
  // Nested ifs instead of -a/-o: the plainest `test` usage, identical in every GRUB 2.
  return [
    `${indent}if [ "$${variable}" != psyopsOS-A ]; then`,
    `${indent}  if [ "$${variable}" != psyopsOS-B ]; then`,
    ...then.map((l) => `${indent}    ${l}`),
    `${indent}  fi`,
    `${indent}fi`,
  ];
}

/** The grub.cfg text. Deterministic: same options, same bytes. */
export function grubCfg(options: GrubCfgOptions = {}): string {
  const timeout = options.timeoutSec ?? 2;
  const panic = options.panicRebootSec ?? 10;
  const extra = options.kernelArgs ? ` ${options.kernelArgs}` : '';
  const lines: string[] = [
    '# psyopsOS boot menu. Static: the slot choice lives in the GRUB environment block',
    `# (${GRUBENV_PATH}, mirror ${GRUBENV_MIRROR_PATH}); see neuralupgrade status.`,
    `set timeout=${timeout}`,
    'serial --speed=115200 --unit=0 --word=8 --parity=no --stop=1',
    'terminal_input console serial',
    'terminal_output console serial',
    '',
    '# 1. the known-good slot',
    `set ${ENV_DEFAULT}=`,
    `set ${ENV_TRY}=`,
    `load_env --file ${GRUBENV_PATH} ${ENV_DEFAULT} ${ENV_TRY}`,
    ...validSlotTest(
      ENV_DEFAULT,
      [
        `set ${ENV_TRY}=`,
        `load_env --file ${GRUBENV_MIRROR_PATH} ${ENV_DEFAULT}`,
        ...validSlotTest(ENV_DEFAULT, [`set ${ENV_DEFAULT}=psyopsOS-${FALLBACK_DEFAULT}`], ''),
      ],
      '',
    ),
    `set psyopsos_boot="$${ENV_DEFAULT}"`,
    '',
    '# 2. try the other slot once: spend the flag on disk first, boot it only if that stuck',
    `if [ "$${ENV_TRY}" != "$${ENV_DEFAULT}" ]; then`,
    `  set psyopsos_next="$${ENV_TRY}"`,
    `  if [ "$psyopsos_next" = psyopsOS-A -o "$psyopsos_next" = psyopsOS-B ]; then`,
    `    set ${ENV_TRY}=`,
    `    save_env --file ${GRUBENV_PATH} ${ENV_TRY}`,
    `    set ${ENV_TRY}="$psyopsos_next"`,
    `    load_env --file ${GRUBENV_PATH} ${ENV_TRY}`,
    `    if [ -z "$${ENV_TRY}" ]; then`,
    `      set psyopsos_boot="$psyopsos_next"`,
    '    fi',
    '  fi',
    'fi',
    '',
    '# 3. menu defaults; a slot that cannot be loaded falls back to the other one',
    '#    (GRUB 2.06 reads `fallback` as an entry number only: A is entry 0, B entry 1)',
    'if [ "$psyopsos_boot" = psyopsOS-B ]; then',
    '  set default=psyopsOS-B',
    '  set fallback=0',
    'else',
    '  set default=psyopsOS-A',
    '  set fallback=1',
    'fi',
    'echo "psyopsOS: booting $psyopsos_boot (known-good $' + ENV_DEFAULT + ')"',
    '',
  ];
  for (const slot of SLOTS) {
    const label = slotLabel(slot);
    lines.push(
      `menuentry ${quote(label)} --id ${label} {`,
      // a slot whose label is gone returns at once, without an error to wait on: fallback
      `  if search --no-floppy --label ${label} --set root; then`,
      `    linux /kernel ro psyopsos=${label} console=tty0 console=ttyS0,115200 panic=${panic}${extra}`,
      '    initrd /initramfs',
      '  fi',
      '}',
    );
  }
  for (const [file, title] of Object.entries(options.extraPrograms ?? {}).sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (!/^[A-Za-z0-9._-]+\.efi$/.test(file)) throw new Error(`extra EFI program name not allowed: ${file}`);
    lines.push(`menuentry ${quote(title)} {`, `  chainloader $prefix/${file}`, '}');
  }
  lines.push('menuentry Reboot {', '  reboot', '}', 'menuentry Poweroff {', '  halt', '}', '');
  return lines.join('\n');
}
