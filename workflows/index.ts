export { checkpoint } from './checkpoint.js';
export { containerCheckpoint, containerRestore } from './containers.js';
export { gc } from './gc.js';
export { progressQuery } from './progress.js';
export { refresh } from './refresh.js';
export { restore } from './restore.js';
export { deleteCheckpoint, inspectCheckpoint, listCheckpoints, specHash } from './store.js';
