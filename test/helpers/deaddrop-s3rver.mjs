// Runs s3rver (a real S3 API over HTTP, filesystem-backed) on 127.0.0.1 for tests and
// benchmarks. Run it with `node --openssl-legacy-provider`: s3rver 3.7.1 encrypts
// ListObjectsV2 continuation tokens with DES, which OpenSSL 3 only has there.
// Usage: node --openssl-legacy-provider deaddrop-s3rver.mjs DIR BUCKET[,BUCKET...] [PORT]
// Prints one JSON line {"port":N} when listening; exits when stdin closes or on SIGTERM.
import S3rver from 's3rver';

const [dir, buckets = 'deaddrop', port = '0'] = process.argv.slice(2);
const server = new S3rver({
  address: '127.0.0.1',
  port: Number(port),
  silent: true,
  directory: dir,
  // Host "<bucket>.s3-website.localhost" becomes a website-endpoint request
  serviceEndpoint: 'localhost',
  configureBuckets: buckets.split(',').map((name) => ({name})),
});
const {port: bound} = await server.run();
process.stdout.write(JSON.stringify({port: bound}) + '\n');
const stop = async () => {
  await server.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.stdin.on('end', stop);
process.stdin.resume();
