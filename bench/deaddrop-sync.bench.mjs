// `npm run bench -- deaddrop-sync`: psy deaddrop forcepush vs aws s3 sync vs rclone sync.
export {run} from './deaddrop-sync.mjs';
