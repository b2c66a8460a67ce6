import {execFileSync} from 'node:child_process';
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {afterEach, beforeEach, describe, expect, it} from 'vitest';
import {buildEspTree} from '../src/boot/esp-tree.js';
import {GRUB_MODULES, grubCfg} from '../src/boot/grub-cfg.js';

describe('static grub.cfg and ESP tree', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'boot-grub-cfg-'));
  });
  afterEach(() => rmSync(dir, {recursive: true, force: true}));

  it('is valid GRUB script (grub-script-check) and deterministic', () => {
    const cfg = grubCfg({kernelArgs: 'quiet', extraPrograms: {'memtest64.efi': "MemTest86 (it's here)"}});
    expect(grubCfg({kernelArgs: 'quiet', extraPrograms: {'memtest64.efi': "MemTest86 (it's here)"}})).toBe(cfg);
    writeFileSync(join(dir, 'grub.cfg'), cfg);
    execFileSync('grub-script-check', [join(dir, 'grub.cfg')]);
    // a broken script is caught by the same check, so the check above means something
    writeFileSync(join(dir, 'bad.cfg'), cfg.replace(/\nfi\n/, '\n'));
    expect(() => execFileSync('grub-script-check', [join(dir, 'bad.cfg')], {stdio: 'pipe'})).toThrow();
  });

  it('has the serial console, env handling, try-once spend and both slot entries', () => {
    const cfg = grubCfg({panicRebootSec: 7});
    expect(cfg).toMatch(/^serial --speed=115200/m);
    expect(cfg).toMatch(/^terminal_input console serial$/m);
    expect(cfg).toMatch(/load_env --file \/grubenv psyopsos_default psyopsos_try/);
    expect(cfg).toMatch(/load_env --file \/grubenv.mirror psyopsos_default/);
    expect(cfg).toMatch(/save_env --file \/grubenv psyopsos_try/);
    for (const s of ['A', 'B']) {
      expect(cfg).toContain(`if search --no-floppy --label psyopsOS-${s} --set root; then`);
      expect(cfg).toContain(`linux /kernel ro psyopsos=psyopsOS-${s} console=tty0 console=ttyS0,115200 panic=7`);
    }
    expect(cfg).toContain('initrd /initramfs');
    // fallback by entry number (GRUB 2.06 ignores names there); A and B are entries 0 and 1
    expect(cfg).toMatch(/set default=psyopsOS-B\n\s+set fallback=0\n/);
    expect(cfg).toMatch(/set default=psyopsOS-A\n\s+set fallback=1\n/);
    const entries = [...cfg.matchAll(/^menuentry '([^']+)'/gm)].map((m) => m[1]);
    expect(entries.slice(0, 2)).toEqual(['psyopsOS-A', 'psyopsOS-B']);
    // the spend happens before the boot choice can move to the new slot
    expect(cfg.indexOf('save_env')).toBeLessThan(cfg.indexOf('set psyopsos_boot="$psyopsos_next"'));
  });

  it('builds BOOTX64.EFI with every module and a content-named grub directory', async () => {
    writeFileSync(join(dir, 'memtest64.efi'), 'not really memtest');
    const out = join(dir, 'esp');
    const tree = await buildEspTree({
      outDir: out,
      extraProgramFiles: {[join(dir, 'memtest64.efi')]: 'MemTest86'},
      sourceDateEpoch: 1_700_000_000,
    });
    expect(tree.grubDir).toMatch(/^grub-[0-9a-f]{12}$/);
    expect(tree.files).toEqual(['EFI/BOOT/BOOTX64.EFI', `${tree.grubDir}/grub.cfg`, `${tree.grubDir}/memtest64.efi`].sort());
    const efi = readFileSync(join(out, 'EFI/BOOT/BOOTX64.EFI'));
    expect(efi.subarray(0, 2).toString('latin1')).toBe('MZ');
    expect(efi.includes(Buffer.from(`/${tree.grubDir}\0`))).toBe(true);
    for (const m of ['loadenv', 'test', 'search_label', 'serial']) expect(GRUB_MODULES).toContain(m);
    expect(readFileSync(join(out, tree.grubDir, 'grub.cfg'), 'utf8')).toContain("menuentry 'MemTest86'");
    // same inputs, same bytes
    const again = await buildEspTree({outDir: join(dir, 'esp2'), extraProgramFiles: {[join(dir, 'memtest64.efi')]: 'MemTest86'}});
    expect(again.grubDir).toBe(tree.grubDir);
    expect(readFileSync(join(dir, 'esp2/EFI/BOOT/BOOTX64.EFI')).equals(efi)).toBe(true);
  });
});
