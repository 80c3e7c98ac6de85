/** The overlay mount of a container rootfs, from /proc/self/mountinfo. */
export interface OverlayRootfs {
  lowerDir: string;
  upperDir: string;
}

/** mountinfo escapes space, tab, newline and backslash as octal. */
function unescapeMountinfo(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));
}

/**
 * Finds the overlay mounted at `mountPoint` (the last one wins, as in the kernel's view). Returns
 * undefined when the rootfs is not an overlay: its writable layer could not be told from the image.
 */
export function findOverlayRootfs(mountinfo: string, mountPoint: string): OverlayRootfs | undefined {
  let found: OverlayRootfs | undefined;
  for (const line of mountinfo.split('\n')) {
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    if (unescapeMountinfo(left.split(' ')[4] ?? '') !== mountPoint) continue;
    const [fsType, , superOptions = ''] = right.split(' ');
    if (fsType !== 'overlay') {
      found = undefined;
      continue;
    }
    const options = new Map(
      superOptions.split(',').map((option) => {
        const eq = option.indexOf('=');
        return eq < 0 ? [option, ''] : [option.slice(0, eq), unescapeMountinfo(option.slice(eq + 1))];
      }),
    );
    const lowerDir = options.get('lowerdir');
    const upperDir = options.get('upperdir');
    found = lowerDir && upperDir ? { lowerDir, upperDir } : undefined;
  }
  return found;
}
