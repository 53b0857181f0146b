"""Build container images here, without a Docker daemon or a registry (the image test).

What this machine allows (CI's is like it): `podman build --isolation chroot --network host`
runs RUN steps; `podman run` does not (cgroups); no image can be pulled. So the base image
deploy/Dockerfile names, ``debian:bookworm-slim``, is made here the way Debian's official
images are made: ``debootstrap --variant=minbase bookworm``. The root file system is tarred
once into the user's cache (``~/.cache/ecompipe``: a clean clone of the repo starts without
it, a machine keeps it; rebuilt when missing or older than MAX_AGE, so security updates
reach it) and ``podman import``-ed into a podman storage of its own, under a temporary
folder that ``close()`` removes: the test leaves no images, layers or mounts behind.

The machine's TLS goes through a proxy whose CA only the host's bundle holds: pip inside a
build is pointed at it through a pip.conf mounted for the build only (the Dockerfile stays
what deploys). apt inside a build uses plain http, as Debian's mirrors do.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

BASE_IMAGE = "docker.io/library/debian:bookworm-slim"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
MAX_AGE = 30 * 86400
HOST_CA = Path("/etc/ssl/certs")


class BuildError(AssertionError):
    """A podman or debootstrap command failed: its command line and the end of its output."""


def cache_dir() -> Path:
    """Where the base root file system is kept between runs (XDG cache)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ecompipe"


def missing_tools() -> list[str]:
    """The commands the image test needs and this machine lacks (scripts/setup-podman
    installs them)."""
    return [tool for tool in ("podman", "debootstrap") if shutil.which(tool) is None]


def run(command: list[str], timeout: float, env: dict[str, str] | None = None) -> str:
    """Run ``command``; its output (stdout and stderr, interleaved). Stopped with SIGTERM
    (so debootstrap's exit trap unmounts /proc in its target), then SIGKILL, at ``timeout``."""
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    ) as proc:
        try:
            output, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                output, _ = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                output, _ = proc.communicate()
            message = f"timed out after {timeout:.0f}s: {command}\n{output[-4000:]}"
            raise BuildError(message) from None
    if proc.returncode != 0:
        raise BuildError(f"exit {proc.returncode}: {command}\n{output[-4000:]}")
    return output


def base_tarball(timeout: float = 420) -> Path:
    """The debootstrap'd Debian root file system as a tar, from the cache or made now
    (about a minute, most of it downloading ~50 MB of packages)."""
    target = cache_dir() / f"debian-{SUITE}-minbase.tar"
    if target.exists() and time.time() - target.stat().st_mtime < MAX_AGE:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # In the cache folder: os.replace below is then atomic (two runs at once: one wins).
    work = Path(tempfile.mkdtemp(prefix="debootstrap-", dir=target.parent))
    try:
        rootfs = work / "rootfs"
        run(["debootstrap", "--variant=minbase", SUITE, str(rootfs), MIRROR], timeout)
        part = work / "rootfs.tar"
        run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(part), "."], timeout)
        os.replace(part, target)
    finally:
        _unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)
    return target


def _unmount_under(folder: Path) -> None:
    """Unmount whatever is still mounted below ``folder`` (a debootstrap that was killed
    leaves /proc and /sys mounted in its target), so removing it cannot reach the host's."""
    prefix = str(folder.resolve()) + "/"
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for point in sorted((m for m in mounts if m.startswith(prefix)), reverse=True):
        subprocess.run(["umount", "--lazy", point], check=False, timeout=30)


class Podman:
    """podman with a storage (and config) of its own under a temporary folder."""

    def __init__(self) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="ecompipe-podman-"))
        self.env = {
            **os.environ,
            # Keep podman's per-user files (~/.config/containers) inside the folder too.
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / "config"),
            "XDG_DATA_HOME": str(self.home / "data"),
        }
        self.global_options = [
            f"--root={self.home / 'storage'}",
            f"--runroot={self.home / 'run'}",
            "--storage-driver=overlay",
        ]

    def __call__(self, *args: str, timeout: float = 120) -> str:
        """``podman <args>`` on this storage; its output."""
        return run(["podman", *self.global_options, *args], timeout, self.env)

    def import_base(self, tarball: Path, timeout: float = 120) -> None:
        """The tar as the image the Dockerfile's FROM names (nothing is pulled)."""
        self("import", str(tarball), BASE_IMAGE, timeout=timeout)

    def build(
        self,
        containerfile: Path,
        context: Path,
        tag: str,
        *options: str,
        timeout: float = 420,
    ) -> str:
        """``podman build`` as this machine allows it (chroot isolation, the host's network,
        never pulling), with pip trusting the host's CA bundle; the build's output."""
        pip_conf = self.home / "pip.conf"
        pip_conf.write_text("[global]\ncert = /run/host-ca/ca-certificates.crt\n")
        return self(
            "build",
            "--isolation=chroot",
            "--network=host",
            "--pull=never",
            "--layers=false",
            f"--volume={HOST_CA}:/run/host-ca:ro",
            f"--volume={pip_conf}:/etc/pip.conf:ro",
            f"--file={containerfile}",
            f"--tag={tag}",
            *options,
            str(context),
            timeout=timeout,
        )

    def close(self) -> None:
        """Remove every image, layer and mount this storage made, then the folder."""
        try:
            self("system", "reset", "--force", timeout=180)
        finally:
            _unmount_under(self.home)
            shutil.rmtree(self.home, ignore_errors=True)
