"""Stand-ins for the official base images, built from Debian packages, and a thin buildah CLI.

No image registry is reachable from the machines this project is tested on, so ``python:…``,
``node:…`` and ``nginxinc/nginx-unprivileged:…`` cannot be pulled. The Dockerfiles take their
base images as build arguments; the image test passes these stand-ins instead:

- python: Debian bookworm (minbase) with python3.11, pip and venv; ``python`` on PATH and pip
  allowed to install system-wide, as in the official image.
- node: Debian trixie (minbase) with Debian's nodejs 20 and npm (bookworm's nodejs 18 is too old
  for the web app's build tools; the build stage only makes static files, so the release of its
  base does not reach the image). npm reads its global config from /etc/npmrc there.
- nginx: Debian bookworm (minbase) with Debian's nginx, made to keep the official unprivileged
  image's contract (see ``nginx/``): entrypoint running /docker-entrypoint.d, templates rendered
  into conf.d with envsubst, user 101 that may write /etc/nginx, pid and temp files in /tmp.

Everything lives in a cache outside the repository (``VOXLIVE_IMAGES_CACHE``, default
``~/.cache/voxlive-images``): a separate buildah storage holding the stand-ins and the build
layers. A stand-in is tagged with a hash of its inputs (this file, ``nginx/``, the Debian mirror
and release), so a change to any of them builds it afresh; Debian's own package updates do not,
until the cache folder is removed.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("VOXLIVE_IMAGES_CACHE", Path.home() / ".cache" / "voxlive-images"))
STORE = ["--root", str(CACHE / "storage"), "--runroot", "/run/voxlive-images", "--storage-driver", "overlay"]  # fmt: skip
TOOLS = ("buildah", "debootstrap", "chroot")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def missing_tools() -> list[str]:
    """The commands the image test needs that are not installed (see scripts/system-deps.sh)."""
    sbin = ("/usr/sbin", "/sbin")
    return [t for t in TOOLS if not shutil.which(t) and not any(Path(d, t).exists() for d in sbin)]


def run(cmd: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure raise with its command line and the tail of its output."""
    env = {**os.environ, "PATH": os.environ.get("PATH", "") + ":/usr/sbin:/sbin"}
    out = subprocess.run(list(cmd), capture_output=True, text=True, env=env, **kwargs)  # type: ignore[call-overload]
    if out.returncode != 0:
        tail = (out.stdout + out.stderr)[-4000:]
        raise RuntimeError(f"{' '.join(cmd)} exited with {out.returncode}:\n{tail}")
    return out  # type: ignore[no-any-return]


def buildah(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """buildah with this project's own storage under the cache folder."""
    return run(["buildah", *STORE, *args], **kwargs)


def image_exists(name: str) -> bool:
    cmd = ["buildah", *STORE, "inspect", "--type", "image", name]
    return subprocess.run(cmd, capture_output=True).returncode == 0


def debian_mirror() -> str:
    """The Debian mirror in this machine's apt sources (VOXLIVE_DEBIAN_MIRROR overrides it)."""
    if mirror := os.environ.get("VOXLIVE_DEBIAN_MIRROR"):
        return mirror
    sources = [*Path("/etc/apt").glob("sources.list.d/*"), Path("/etc/apt/sources.list")]
    for path in sources:
        text = path.read_text(errors="replace") if path.is_file() else ""
        for uri in re.findall(r"(?:^URIs:|^deb(?:\s+\[[^]]*\])?)\s+(\S+)", text, re.MULTILINE):
            if uri.rstrip("/").endswith("/debian"):
                return str(uri)
    return "http://deb.debian.org/debian"


def chroot(root: Path, *cmd: str) -> None:
    env = ["env", "-i", f"PATH={PATH}", "LC_ALL=C", "DEBIAN_FRONTEND=noninteractive"]
    run(["chroot", str(root), *env, *cmd])


@dataclass(frozen=True)
class StandIn:
    name: str  # localhost/voxlive-standin-NAME:KEY
    official: str  # the image it stands in for
    suite: str  # the Debian release
    packages: tuple[str, ...]  # Debian packages debootstrap installs
    config: tuple[str, ...]  # buildah config options
    finish: Callable[[Path], None]  # completes the root filesystem
    inputs: tuple[Path, ...] = ()  # files whose content is part of the cache key

    def key(self) -> str:
        digest = hashlib.sha256()
        for part in (Path(__file__), *self.inputs):
            digest.update(part.read_bytes())
        for part in (self.name, self.suite, debian_mirror(), ",".join(self.packages)):
            digest.update(part.encode())
        return digest.hexdigest()[:16]


def _finish_python(root: Path) -> None:
    (root / "usr/lib/python3.11/EXTERNALLY-MANAGED").unlink(missing_ok=True)
    if not (root / "usr/bin/python").exists():
        (root / "usr/bin/python").symlink_to("python3.11")


def apt_install(root: Path, *packages: str) -> None:
    """apt-get install in the chroot (debootstrap's resolver cannot place npm's dependencies)."""
    policy = root / "usr/sbin/policy-rc.d"  # no service may start inside the chroot
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    chroot(root, "apt-get", "install", "-y", "-q", "--no-install-recommends", *packages)
    policy.unlink()


def _finish_node(root: Path) -> None:
    apt_install(root, "nodejs", "npm")


def _finish_nginx(root: Path) -> None:
    apt_install(root, "nginx")
    chroot(root, "groupadd", "--system", "--gid", "101", "nginx")
    chroot(root, "useradd", "--system", "--uid", "101", "--gid", "101", "--no-create-home",
           "--home-dir", "/nonexistent", "--shell", "/bin/false", "nginx")  # fmt: skip
    shutil.copy(HERE / "nginx/nginx.conf", root / "etc/nginx/nginx.conf")
    for site in (root / "etc/nginx/sites-enabled").glob("*"):
        site.unlink()
    shutil.copy(HERE / "nginx/docker-entrypoint.sh", root / "docker-entrypoint.sh")
    (root / "docker-entrypoint.d").mkdir()
    shutil.copy(HERE / "nginx/20-envsubst-on-templates.sh", root / "docker-entrypoint.d")
    for log, target in (("access.log", "/dev/stdout"), ("error.log", "/dev/stderr")):
        (root / "var/log/nginx" / log).unlink(missing_ok=True)
        (root / "var/log/nginx" / log).symlink_to(target)
    for folder in ("etc/nginx", "var/lib/nginx", "var/log/nginx"):
        run(["chown", "-R", "101:0", str(root / folder)])
        run(["chmod", "-R", "g+w", str(root / folder)])


_ENV = ("--env", f"PATH={PATH}", "--env", "LANG=C.UTF-8")
STANDINS = {
    "python": StandIn(
        "python", "python:3.11-slim-bookworm", "bookworm",
        ("python3.11", "python3-pip", "python3-venv", "ca-certificates"),
        (*_ENV, "--cmd", "python3"), _finish_python,
    ),
    "node": StandIn(
        "node", "node:20-bookworm-slim", "trixie", ("ca-certificates",),
        (*_ENV, "--cmd", "node"), _finish_node,
    ),
    "nginx": StandIn(
        "nginx", "nginxinc/nginx-unprivileged:1.27-alpine", "bookworm",
        ("ca-certificates", "gettext-base", "wget"),
        (*_ENV, "--entrypoint", '["/docker-entrypoint.sh"]', "--cmd", "nginx -g 'daemon off;'",
         "--user", "101", "--port", "8080", "--stop-signal", "SIGQUIT"),
        _finish_nginx, tuple(sorted((HERE / "nginx").iterdir())),
    ),
}  # fmt: skip


def ensure(name: str) -> str:
    """The stand-in image for ``name`` (python, node, nginx), built unless cached; its tag."""
    standin = STANDINS[name]
    repo = f"localhost/voxlive-standin-{name}"
    image = f"{repo}:{standin.key()}"
    if image_exists(image):
        return image
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE, prefix=f"rootfs-{name}-") as tmp:
        root = Path(tmp) / "root"
        packages = ",".join(standin.packages)
        run(["debootstrap", "--variant=minbase", f"--include={packages}", standin.suite,
             str(root), debian_mirror()])  # fmt: skip
        standin.finish(root)
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (root / junk).glob("*"):
                if path.is_file():
                    path.unlink()
        tarball = Path(tmp) / "rootfs.tar"
        run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(tarball), "."])
        container = buildah("from", "scratch").stdout.strip()
        try:
            buildah("add", container, str(tarball), "/")
            buildah("config", *standin.config, "--label", f"stands-in-for={standin.official}",
                    container)  # fmt: skip
            buildah("commit", "--rm", container, image)
        except BaseException:
            subprocess.run(["buildah", *STORE, "rm", container], capture_output=True)
            raise
    # Older stand-ins of the same name (other inputs) are no longer wanted.
    listed = buildah("images", "--format", "{{.Name}}:{{.Tag}}").stdout.split()
    for old in listed:
        if old.startswith(f"{repo}:") and old != image:
            subprocess.run(["buildah", *STORE, "rmi", old], capture_output=True)
    return image
