/** The deaddrop: local replica layout, publishing, S3 sync and an HTTP server. */
export * from './layout.js';
export {publishToReplica, type PublishArtifact, type PublishOptions, type PublishResult, type PublishedArtifact} from './publish.js';
export {parseDeaddropSettings, parseS3Settings, type DeaddropSettings, type S3Settings} from './settings.js';
export {checkBucket, createS3Client, s3Error} from './s3-client.js';
export {planPush, pull, push, redirectTarget, type SyncAction, type SyncOptions, type SyncPlan, type SyncResult} from './sync.js';
export {serveReplica, type RunningServer, type ServeOptions} from './serve.js';
