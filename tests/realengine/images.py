"""Local images for the real-engine tests, built offline with ``docker import``.

There is no registry: each image is a rootfs made on this machine and imported.

``base``   busybox-static (``sh``, ``wget``, ``nc``...) with every applet linked; the proxy
           image of the test checkout is built ``FROM`` it by ``docker compose up --build``.
``mysql``  Debian's MariaDB server and client binaries with the libraries ``ldd`` lists, a
           datadir initialised by ``mariadb-install-db``, and ``realhost/mysql/entrypoint.sh``
           that creates the database, users and the ``nodes`` table on a container's first start.

The ``ccproxy`` stand-in (``realhost/proxy``) is built with the Debian Go toolchain and the
real MySQL driver (offline GOPATH). Every tag carries a content hash of what went into it,
so a run reuses an image only when its sources are unchanged.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REALHOST = REPO / "realhost"
BUSYBOX = Path("/bin/busybox")
MARIADB_BINARIES = (Path("/usr/sbin/mariadbd"), Path("/usr/bin/mariadb-admin"), Path("/usr/bin/mariadb"))
GOPATH = "/usr/share/gocode"
IMAGE_LABEL = "qcc.realengine=1"


class ImageBuildError(RuntimeError):
    """A step of an image build failed; the message holds the command's output."""


def _run(argv: list[str], *, input_bytes: bytes | None = None, cwd: Path | None = None,
         env: dict[str, str] | None = None, timeout_s: float = 300.0) -> str:
    res = subprocess.run(argv, input=input_bytes, cwd=cwd, env=env, capture_output=True,
                         timeout=timeout_s, check=False)
    if res.returncode != 0:
        raise ImageBuildError(f"{' '.join(argv)} -> {res.returncode}\n{res.stdout.decode(errors='replace')}"
                              f"\n{res.stderr.decode(errors='replace')}")
    return res.stdout.decode(errors="replace")


def _hash_paths(paths: list[Path], extra: str = "") -> str:
    h = hashlib.sha256(extra.encode())
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            h.update(str(f).encode())
            st = f.stat()
            if st.st_size > 1 << 20:  # a system binary: its identity is enough
                h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
            else:
                h.update(f.read_bytes())
    return h.hexdigest()[:12]


def _libraries(binary: Path) -> list[Path]:
    """Shared libraries of ``binary`` as ``ldd`` lists them (resolved paths, loader included)."""
    out = _run(["ldd", str(binary)])
    libs = []
    for line in out.splitlines():
        parts = line.split()
        for word in parts:
            if word.startswith("/"):
                libs.append(Path(word))
                break
    return libs


def _busybox_rootfs(root: Path) -> None:
    dirs = ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "tmp", "root", "app", "var/lib", "run", "dev", "proc", "sys")
    for d in dirs:
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "tmp").chmod(0o1777)
    shutil.copy2(BUSYBOX, root / "bin/busybox")
    for applet in _run([str(BUSYBOX), "--list"]).split():
        link = root / "bin" / applet
        if not link.exists():
            link.symlink_to("busybox")
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    (root / "etc/group").write_text("root:x:0:\nnogroup:x:65534:\n")
    (root / "etc/nsswitch.conf").write_text("hosts: files dns\n")


def _import(root: Path, tag: str, changes: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="qcc-img-") as tmp:
        tar_path = Path(tmp) / "rootfs.tar"
        with tarfile.open(tar_path, "w") as tar:
            for child in sorted(root.iterdir()):
                tar.add(child, arcname=child.name)
        argv = ["docker", "import"]
        for change in [*changes, f"LABEL {IMAGE_LABEL}"]:
            argv += ["--change", change]
        _run([*argv, str(tar_path), tag])


def image_exists(tag: str) -> bool:
    """True when the engine has an image called ``tag``."""
    return subprocess.run(["docker", "image", "inspect", tag], capture_output=True, check=False).returncode == 0


def build_base(tag: str) -> None:
    """Import the busybox base image as ``tag``."""
    with tempfile.TemporaryDirectory(prefix="qcc-base-") as tmp:
        root = Path(tmp)
        _busybox_rootfs(root)
        _import(root, tag, ['CMD ["/bin/sh"]'])


def build_mysql(tag: str) -> None:
    """Import the MariaDB image as ``tag`` (binaries, their libraries, an initialised datadir)."""
    with tempfile.TemporaryDirectory(prefix="qcc-mysql-") as tmp:
        root = Path(tmp) / "rootfs"
        _busybox_rootfs(root)
        files: set[Path] = set()
        for binary in MARIADB_BINARIES:
            files.add(binary)
            files.update(_libraries(binary))
        for f in sorted(files):
            dest = root / str(f).lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f.resolve(), dest)
        share = root / "usr/share/mysql"
        share.mkdir(parents=True, exist_ok=True)
        shutil.copytree("/usr/share/mysql/charsets", share / "charsets")
        shutil.copytree("/usr/share/mysql/english", share / "english")
        datadir = root / "var/lib/mysql"
        datadir.mkdir(parents=True)
        _run(["mariadb-install-db", "--no-defaults", f"--datadir={datadir}", "--user=root",
              "--auth-root-authentication-method=socket", "--skip-test-db", "--basedir=/usr"], timeout_s=180)
        shutil.copy2(REALHOST / "mysql/entrypoint.sh", root / "entrypoint.sh")
        _import(root, tag, ['ENTRYPOINT ["/entrypoint.sh"]', "EXPOSE 3306"])


def build_ccproxy(dest: Path) -> None:
    """Compile ``realhost/proxy`` into ``dest`` (static, real MySQL driver, offline GOPATH)."""
    with tempfile.TemporaryDirectory(prefix="qcc-go-") as cache:
        env = dict(os.environ, GO111MODULE="off", GOPATH=GOPATH, CGO_ENABLED="0", GOCACHE=cache, GOFLAGS="")
        _run(["go", "build", "-trimpath", "-o", str(dest), "."], cwd=REALHOST / "proxy", env=env, timeout_s=300)


@dataclass(frozen=True)
class Images:
    """The tags of one run's images and the compiled stand-in binary."""

    base: str
    mysql: str
    ccproxy: Path


def ensure_images(workdir: Path) -> tuple[Images, list[str]]:
    """Build (or reuse, by content hash) the images and the binary; returns them and the tags built."""
    base_tag = "qcc-realengine-base:" + _hash_paths([BUSYBOX])
    mysql_tag = "qcc-realengine-mysql:" + _hash_paths([BUSYBOX, *MARIADB_BINARIES, REALHOST / "mysql"])
    built = []
    if not image_exists(base_tag):
        build_base(base_tag)
        built.append(base_tag)
    if not image_exists(mysql_tag):
        build_mysql(mysql_tag)
        built.append(mysql_tag)
    ccproxy = workdir / ("ccproxy-" + _hash_paths([REALHOST / "proxy"]))
    if not ccproxy.exists():
        build_ccproxy(ccproxy)
    return Images(base=base_tag, mysql=mysql_tag, ccproxy=ccproxy), built
