export { checkpoint } from './checkpoint.js';
export { progressQuery } from './progress.js';
export { restore } from './restore.js';
