'use strict';
// Fault injection for tests (node --require): appends (writev) to files whose path ends
// with $PSY_TEST_ENOSPC fail with ENOSPC, writing nothing, as on a full disk.
const fs = require('node:fs');
const {syncBuiltinESMExports} = require('node:module');

const suffix = process.env.PSY_TEST_ENOSPC;
if (suffix) {
  const fds = new Set();
  const {openSync, closeSync, writevSync} = fs;
  fs.openSync = function (path, ...rest) {
    const fd = openSync.call(this, path, ...rest);
    if (String(path).endsWith(suffix)) fds.add(fd);
    else fds.delete(fd);
    return fd;
  };
  fs.closeSync = function (fd) {
    fds.delete(fd);
    return closeSync.call(this, fd);
  };
  fs.writevSync = function (fd, ...rest) {
    if (fds.has(fd)) {
      const err = new Error('ENOSPC: no space left on device, write');
      Object.assign(err, {code: 'ENOSPC', errno: -28, syscall: 'write'});
      throw err;
    }
    return writevSync.call(this, fd, ...rest);
  };
  syncBuiltinESMExports();
}
