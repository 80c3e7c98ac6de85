import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';

async function blob(dir: string, content: Buffer | string): Promise<{ digest: string; size: number }> {
  const data = typeof content === 'string' ? Buffer.from(content) : content;
  const hex = createHash('sha256').update(data).digest('hex');
  await writeFile(path.join(dir, 'blobs', 'sha256', hex), data);
  return { digest: `sha256:${hex}`, size: data.length };
}

/**
 * Packs a root filesystem directory as a one-layer OCI image archive that `ctr images import`
 * takes, named `name` (no registry exists here). `config` is the image's run config (Entrypoint, Env...).
 */
export async function buildOciArchive(rootfs: string, name: string, archive: string, config: Record<string, unknown> = {}): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'torpor-oci-'));
  try {
    await mkdir(path.join(dir, 'blobs', 'sha256'), { recursive: true });
    const layerTar = path.join(dir, 'layer.tar');
    await execa('tar', ['-C', rootfs, '--numeric-owner', '-cf', layerTar, '.']);
    const layer = await blob(dir, await readFile(layerTar));
    await rm(layerTar);
    const configBlob = await blob(
      dir,
      JSON.stringify({ architecture: 'amd64', os: 'linux', config, rootfs: { type: 'layers', diff_ids: [layer.digest] } }),
    );
    const manifest = await blob(
      dir,
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...configBlob },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layer }],
      }),
    );
    await writeFile(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    await writeFile(
      path.join(dir, 'index.json'),
      JSON.stringify({
        schemaVersion: 2,
        manifests: [
          {
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            ...manifest,
            annotations: { 'io.containerd.image.name': name, 'org.opencontainers.image.ref.name': name.split(':').pop() },
          },
        ],
      }),
    );
    await execa('tar', ['-C', dir, '-cf', archive, 'oci-layout', 'index.json', 'blobs']);
    await stat(archive);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
