/** The application contract shared with NVIDIA Dynamo's ChReK: names an app written for ChReK reads. */
export const ChrekEnv = {
  signalFile: 'DYN_CHECKPOINT_SIGNAL_FILE',
  readyFile: 'DYN_CHECKPOINT_READY_FILE',
  hash: 'DYN_CHECKPOINT_HASH',
  location: 'DYN_CHECKPOINT_LOCATION',
  storageType: 'DYN_CHECKPOINT_STORAGE_TYPE',
  restoreMarkerFile: 'DYN_RESTORE_MARKER_FILE',
  checkpointPath: 'DYN_CHECKPOINT_PATH',
} as const;

export const CHECKPOINT_SOURCE_LABEL = 'nvidia.com/checkpoint-source';
export const CHECKPOINT_DONE_MARKER = 'checkpoint.done';
export const MANIFEST_FILE = 'manifest.json';
export const IMAGES_DIR = 'images';

/** Environment names a workload may not set itself: the agent owns them. */
export const RESERVED_ENV_PREFIXES = ['DYN_CHECKPOINT_', 'DYN_RESTORE_', 'TORPOR_'] as const;
