"""Building OCI image layouts on disk and running skopeo, for the registry
tests (stdlib only).

`build_layout` writes an image layout (oci-layout, index.json, blobs/sha256)
holding one multi-platform image: an OCI image index naming one image
manifest per platform, each with a config and gzip'd tar layers of
random bytes, and returns what it wrote so a test can compare digests after a
round trip through a registry.
"""

import gzip
import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import tarfile

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MiB = 1 << 20


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Layout:
    """What build_layout wrote: the index digest and every blob by digest."""

    def __init__(self, path, tag):
        self.path = path
        self.tag = tag
        self.index_digest = None
        self.manifests = []  # digests of the per-platform image manifests
        self.configs = {}    # "os/arch" -> (config digest, [diff_ids])
        self.blobs = {}      # digest -> size, for every blob (manifests included)

    def ref(self):
        return "oci:%s:%s" % (self.path, self.tag)


def _write_blob(layout, data):
    d = sha256(data)
    p = os.path.join(layout.path, "blobs", "sha256", d.split(":", 1)[1])
    with open(p, "wb") as f:
        f.write(data)
    layout.blobs[d] = len(data)
    return d


def _tar(name, data):
    """A tar archive holding one file `name` with `data` (a real layer, so
    that clients which unpack layers, as podman does, accept it)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o644
        info.mtime = 0
        t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _layer(layout, name, data):
    """A gzip'd tar layer holding `data` as file `name`; returns (descriptor,
    diff_id)."""
    raw = _tar(name, data)
    gz = gzip.compress(raw, compresslevel=1, mtime=0)
    d = _write_blob(layout, gz)
    return {"mediaType": OCI_LAYER_GZIP, "digest": d, "size": len(gz)}, sha256(raw)


def build_layout(path, tag="v1", layer_sizes=(1 * MiB, 70 * MiB, 3 * MiB, 1024),
                 platforms=(("linux", "amd64"), ("linux", "arm64")), seed=1):
    """Writes a layout at `path` (replaced if present). Each platform's image
    has its own small first layer; the rest are shared between platforms, so
    the push exercises blobs that already exist. The largest layer is random
    and so stays over 64 MiB compressed."""
    rng = random.Random(seed)
    if os.path.exists(path):
        shutil.rmtree(path)
    os.makedirs(os.path.join(path, "blobs", "sha256"))
    layout = Layout(path, tag)
    with open(os.path.join(path, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)

    shared = [_layer(layout, "shared/%d" % i, rng.randbytes(n)) for i, n in enumerate(layer_sizes[1:])]
    entries = []
    for os_, arch in platforms:
        own = _layer(layout, "%s-%s" % (os_, arch), rng.randbytes(layer_sizes[0]))
        layers = [own] + shared
        config = {
            "architecture": arch,
            "os": os_,
            "config": {"Env": ["PATH=/usr/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [diff for _, diff in layers]},
        }
        cb = json.dumps(config, sort_keys=True).encode()
        cd = _write_blob(layout, cb)
        layout.configs["%s/%s" % (os_, arch)] = (cd, [diff for _, diff in layers])
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": cd, "size": len(cb)},
            "layers": [desc for desc, _ in layers],
        }
        mb = json.dumps(manifest, sort_keys=True, indent=2).encode()
        md = _write_blob(layout, mb)
        layout.manifests.append(md)
        entries.append({"mediaType": OCI_MANIFEST, "digest": md, "size": len(mb),
                        "platform": {"os": os_, "architecture": arch}})
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    ib = json.dumps(index, sort_keys=True, indent=2).encode()
    layout.index_digest = _write_blob(layout, ib)
    top = {"schemaVersion": 2, "mediaType": OCI_INDEX,
           "manifests": [{"mediaType": OCI_INDEX, "digest": layout.index_digest, "size": len(ib),
                          "annotations": {"org.opencontainers.image.ref.name": tag}}]}
    with open(os.path.join(path, "index.json"), "w") as f:
        json.dump(top, f)
    return layout


def read_layout(path):
    """(top index.json, {digest: size} of every blob file) of a layout; every
    blob's bytes are checked against its name."""
    with open(os.path.join(path, "index.json")) as f:
        top = json.load(f)
    blobs = {}
    bdir = os.path.join(path, "blobs", "sha256")
    for name in os.listdir(bdir):
        h = hashlib.sha256()
        with open(os.path.join(bdir, name), "rb") as f:
            while True:
                b = f.read(4 * MiB)
                if not b:
                    break
                h.update(b)
        if h.hexdigest() != name:
            raise AssertionError("blob %s holds content %s" % (name, h.hexdigest()))
        blobs["sha256:" + name] = os.path.getsize(os.path.join(bdir, name))
    return top, blobs


def skopeo(args, timeout=900):
    """Runs skopeo; returns (returncode, combined output)."""
    p = subprocess.run(["skopeo", "--insecure-policy"] + list(args), stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def have_skopeo():
    return shutil.which("skopeo") is not None
