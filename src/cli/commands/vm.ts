import {spawn} from 'node:child_process';
import {existsSync} from 'node:fs';
import {resolve} from 'node:path';
import {build} from '../../engine/build.js';
import {PsyError} from '../../errors.js';
import {bootAndWatch} from '../../vm/boot-watch.js';
import {loadConfig} from '../../engine/load-config.js';
import {QEMU, chooseAccel, parseMac, qemuArgs, qemuMissing, type AccelChoice} from '../../vm/qemu.js';
import {loadNodeProject} from '../../node/project.js';
import {NODE_FILE} from '../../node/store.js';
import {parseCommandArgs, writeLine, type Command} from '../command.js';
import {shellWord} from '../../tools/shell-quote.js';

const help = `Usage: psy vm [options] [IMAGE | diskimg@NAME]

Boots a psyopsOS disk image in QEMU with UEFI (OVMF), the serial console on this
terminal (Ctrl-A X quits, Ctrl-A C toggles the QEMU monitor). Without IMAGE, the
config's diskimg target is built first (a no-op when it is up to date) and booted;
with diskimg@NAME or --node NAME, node NAME's image (its target diskimg@NAME) is.
Writes go to a throwaway snapshot unless --write is given.

Options:
      --accel A       kvm, tcg or auto (default auto: KVM when a KVM guest really
                      starts on this machine, TCG otherwise)
  -m, --memory MiB    guest memory (default 1024)
      --cpus N        guest CPUs (default 1)
      --write         write to the image instead of a snapshot
      --node NAME     boot as node NAME: its diskimg@NAME is built and booted
                      (unless IMAGE is given) with the NIC's MAC from
                      nodes/NAME/node.json
      --mac MAC       the NIC's MAC address, e.g. the one a node's mactab names
                      (default: the node's MAC with --node or diskimg@NAME,
                      settings.alpine.node.mac when the config's diskimg is
                      booted, else QEMU's)
      --firmware F    OVMF firmware file (default: the Debian ovmf package's)
      --config FILE   use FILE instead of build.config.ts
Headless test mode (serial console to a log file, no terminal):
      --marker RE     succeed (exit 0) when a console line matches RE
      --timeout SEC   give up after SEC seconds (default 180)
      --log FILE      console log (default vm-console.log)
      --dry-run       print the QEMU command line instead of running it (the
                      image is still built when needed)
Fails fast on a kernel panic, a GRUB prompt or the initramfs rescue shell.`;

export const command: Command = {
  name: 'vm',
  summary: 'boot a disk image in QEMU (UEFI, serial console)',
  help,
  async run(argv, io) {
    const {values, positionals} = parseCommandArgs('vm', argv, {
      accel: {type: 'string'},
      memory: {type: 'string', short: 'm'},
      cpus: {type: 'string'},
      write: {type: 'boolean'},
      mac: {type: 'string'},
      node: {type: 'string'},
      'dry-run': {type: 'boolean'},
      firmware: {type: 'string'},
      config: {type: 'string'},
      marker: {type: 'string'},
      timeout: {type: 'string'},
      log: {type: 'string'},
    });
    const accelChoice = (values.accel ?? 'auto') as AccelChoice;
    if (!['auto', 'kvm', 'tcg'].includes(accelChoice)) throw new PsyError('usage', `--accel must be kvm, tcg or auto, not ${values.accel}`);
    const num = (name: string, v: string | undefined, dflt: number) => {
      if (v === undefined) return dflt;
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new PsyError('usage', `${name} must be a positive whole number, not ${v}`);
      return n;
    };
    const memoryMiB = num('--memory', values.memory, 1024);
    const cpus = num('--cpus', values.cpus, 1);
    if (positionals.length > 1) throw new PsyError('usage', 'psy vm takes at most one IMAGE (see psy vm --help)');

    let mac = values.mac === undefined ? undefined : parseMac(values.mac, '--mac');
    const configOpt = values.config === undefined ? {} : {configPath: values.config};
    // `psy vm diskimg@NAME` names the node's target; a file of that name would be an image
    const targetArg = positionals[0] !== undefined && !existsSync(resolve(io.cwd, positionals[0])) ? /^diskimg@(.*)$/.exec(positionals[0])?.[1] : undefined;
    if (targetArg !== undefined && values.node !== undefined && targetArg !== values.node) {
      throw new PsyError('usage', `--node ${values.node} and diskimg@${targetArg} name different nodes`);
    }
    const node = values.node ?? targetArg;
    if (node !== undefined) {
      // the MAC the node's mactab names, so its psy0 exists in the VM as on the machine
      const {nodes} = await loadNodeProject(io.cwd, values.config);
      const record = nodes.read(node);
      mac ??= parseMac(record.mac, `${nodes.rel(node, NODE_FILE)}: mac`);
    }
    let image: string;
    if (positionals[0] !== undefined && targetArg === undefined) {
      image = resolve(io.cwd, positionals[0]);
      if (!existsSync(image)) throw new PsyError('missing-input', `disk image ${positionals[0]} does not exist`);
    } else {
      const target = node === undefined ? 'diskimg' : `diskimg@${node}`;
      const r = await build({cwd: io.cwd, ...configOpt, targets: [target]});
      if (!r.ok) {
        const f = r.failed[0];
        throw new PsyError('build-failed', f ? `building ${target} failed: ${f.target}: ${f.message}` : `building ${target} failed`);
      }
      const out = r.outputs[target];
      const first = out ? Object.values(out)[0] : undefined;
      if (!first) throw new PsyError('missing-input', `the config has no ${target} target with an output`);
      image = first;
      if (mac === undefined) {
        const loaded = await loadConfig({cwd: io.cwd, ...configOpt});
        const alpineNode = (loaded.config.settings?.['alpine'] as {node?: {mac?: unknown}} | undefined)?.node;
        if (alpineNode?.mac !== undefined) mac = parseMac(String(alpineNode.mac), 'settings.alpine.node.mac');
      }
    }
    const accel = await chooseAccel(accelChoice, values.firmware);
    const base = {
      image,
      snapshot: values.write !== true,
      memoryMiB,
      cpus,
      ...(values.firmware === undefined ? {} : {firmware: values.firmware}),
      ...(mac === undefined ? {} : {mac}),
    };

    const logFile = resolve(io.cwd, values.log ?? 'vm-console.log');
    if (values['dry-run'] === true) {
      const args = qemuArgs(
        {
          ...base,
          serial: values.marker === undefined ? {kind: 'stdio'} : {kind: 'file', path: logFile},
          noNetwork: values.marker !== undefined && mac === undefined,
        },
        accel,
      );
      writeLine(io.stdout, [QEMU, ...args].map(shellWord).join(' '));
      return 0;
    }

    if (values.marker !== undefined) {
      let marker: RegExp;
      try {
        marker = new RegExp(values.marker);
      } catch {
        throw new PsyError('usage', `--marker ${values.marker} is not a regular expression`);
      }
      const r = await bootAndWatch({
        ...base,
        accel,
        marker,
        logFile,
        timeoutMs: num('--timeout', values.timeout, 180) * 1000,
      });
      writeLine(io.stdout, `${r.line.trim()} (${accel}, ${r.seconds.toFixed(1)} s)`);
      return 0;
    }

    writeLine(io.stderr, `psy vm: ${image} (${accel}${base.snapshot ? ', snapshot' : ', writing to the image'}); Ctrl-A X quits`);
    const args = qemuArgs({...base, serial: {kind: 'stdio'}}, accel);
    return new Promise<number>((resolvePromise, reject) => {
      const child = spawn(QEMU, args, {stdio: 'inherit'});
      // Ctrl-C reaches the guest (QEMU owns the raw terminal); a TERM or HUP sent to
      // psy must not leave the VM running.
      const forward = (sig: NodeJS.Signals) => child.kill(sig);
      process.on('SIGTERM', forward);
      process.on('SIGHUP', forward);
      child.on('error', (e) => reject(qemuMissing(e) ?? new PsyError('vm-failed', `${QEMU}: ${e.message}`)));
      child.on('close', (code) => {
        process.off('SIGTERM', forward);
        process.off('SIGHUP', forward);
        resolvePromise(code ?? 1);
      });
    });
  },
};
