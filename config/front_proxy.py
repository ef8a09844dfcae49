"""The piece that faces clients: nginx, from config/nginx.conf.template, in front of
gunicorn (docs/operations.md, "What may face the internet"). nginx reads each request whole, within
its timeouts, before gunicorn sees a byte of it, so that a slow client costs an nginx
connection instead of one of gunicorn's threads.

    python -m config.front_proxy --listen 0.0.0.0:8080 --upstream 127.0.0.1:8000
    python -m config.front_proxy --listen 0.0.0.0:8080 --upstream 127.0.0.1:8000 -- \\
        gunicorn -c config/gunicorn.conf.py app:app          # both; stops both
    python -m config.front_proxy --listen 0.0.0.0:8080 \\
        --upstream 127.0.0.1:8001 --upstream 127.0.0.1:8002   # a load balancer of two
    python -m config.front_proxy --check                      # render and run nginx -t

The rendered config, pid file and temporary files live in a private runtime directory;
nothing in /etc, /var or /run is read or written. In tests: `with FrontProxy(...) as p:`.
"""

from __future__ import annotations

import argparse
import grp
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

TEMPLATE = Path(__file__).with_name("nginx.conf.template")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


@dataclass
class FrontProxy:
    listen: str  # host:port nginx listens on
    upstream: str | list[str]  # host:port (or unix:/path) of gunicorn; a list for several
    runtime_dir: str | None = None  # made, and removed at stop, when None
    header_timeout: str = "10s"  # the whole request head
    body_timeout: str = "10s"  # between two reads of the body
    max_body: str = "64k"  # above the service's 16 KiB, so that the service answers first
    conn_per_client: int = 256  # requests in progress per client address
    limit_exempt: list[str] = field(default_factory=list)  # CIDRs not limited
    trusted_proxies: list[str] = field(default_factory=list)  # whose X-Forwarded-For to take
    access_log: bool = False  # the service logs each request itself
    worker_user: str = "nobody"  # nginx's workers, when started as root
    stderr: object = None
    process: subprocess.Popen | None = field(default=None, init=False)
    _made_dir: bool = field(default=False, init=False)

    @property
    def upstreams(self) -> list[str]:
        return [self.upstream] if isinstance(self.upstream, str) else list(self.upstream)

    def render(self) -> str:
        assert self.runtime_dir
        if os.geteuid() == 0:
            group = "nogroup" if _group_exists("nogroup") else self.worker_user
            user = f"user {self.worker_user} {group};"
        else:
            user = "# not root: the workers run as the invoking user"
        real_ip = [f"    set_real_ip_from {cidr};" for cidr in self.trusted_proxies]
        if real_ip:
            real_ip += ["    real_ip_header X-Forwarded-For;", "    real_ip_recursive on;"]
        # One instance is never marked down (nginx would have nowhere to send a request);
        # with several, an instance that refuses a connection is skipped for 2 s.
        health = "max_fails=0" if len(self.upstreams) == 1 else "max_fails=1 fail_timeout=2s"
        values = {
            "LISTEN": self.listen,
            "UPSTREAM_SERVERS": "\n".join(
                f"        server {address} {health};" for address in self.upstreams
            ),
            "RUNTIME_DIR": self.runtime_dir,
            "USER_DIRECTIVE": user,
            "ACCESS_LOG": "/dev/stdout json" if self.access_log else "off",
            "HEADER_TIMEOUT": self.header_timeout,
            "BODY_TIMEOUT": self.body_timeout,
            "MAX_BODY": self.max_body,
            "CONN_PER_CLIENT": str(self.conn_per_client),
            "LIMIT_EXEMPT": "\n".join(f"        {cidr} 1;" for cidr in self.limit_exempt),
            "REAL_IP": "\n".join(real_ip),
        }
        return re.sub(r"@@([A-Z_]+)@@", lambda m: values[m[1]], TEMPLATE.read_text())

    def prepare(self) -> Path:
        if self.runtime_dir is None:
            self.runtime_dir = tempfile.mkdtemp(prefix="scrubs-front-proxy-")
            self._made_dir = True
        runtime = Path(self.runtime_dir).resolve()
        runtime.mkdir(parents=True, exist_ok=True)
        self.runtime_dir = str(runtime)
        if os.geteuid() == 0:
            runtime.chmod(0o711)  # the workers (worker_user) write temporary files under it
        config = runtime / "nginx.conf"
        config.write_text(self.render())
        return config

    def _command(self, config: Path, *extra: str) -> list[str]:
        # -e: the error log before the config is read, else /var/log/nginx/error.log.
        return [NGINX, "-p", f"{self.runtime_dir}/", "-c", str(config), "-e", "stderr", *extra]

    def check(self) -> None:
        subprocess.run(self._command(self.prepare(), "-t", "-q"), check=True)

    def start(self, timeout: float = 10.0) -> FrontProxy:
        if not Path(NGINX).exists():
            raise RuntimeError(f"nginx is not installed ({NGINX}): run .ci/install-proxy")
        config = self.prepare()
        subprocess.run(self._command(config, "-t", "-q"), check=True, stderr=self.stderr)
        self.process = subprocess.Popen(self._command(config), stderr=self.stderr)
        host, _, port = self.listen.rpartition(":")
        host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "*": "127.0.0.1"}.get(host, host)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited at start with status {self.process.returncode}")
            try:
                socket.create_connection((host.strip("[]"), int(port)), timeout=0.5).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop(graceful=False)
                    raise RuntimeError(f"nginx is not listening on {self.listen}") from None
                time.sleep(0.05)

    def stop(self, graceful: bool = True, timeout: float = 30.0) -> int | None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGQUIT if graceful else signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._made_dir and self.runtime_dir:
            shutil.rmtree(self.runtime_dir, ignore_errors=True)
        return None if process is None else process.returncode

    def __enter__(self) -> FrontProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command: list[str] = []
    if "--" in argv:
        argv, command = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--listen", default=os.environ.get("PROXY_LISTEN", "127.0.0.1:8080"))
    parser.add_argument(
        "--upstream",
        action="append",
        metavar="HOST:PORT",
        help="a gunicorn instance; repeat for several (default: PROXY_UPSTREAM, comma-separated,"
        " else 127.0.0.1:8000)",
    )
    parser.add_argument("--runtime-dir", default=os.environ.get("PROXY_RUNTIME_DIR"))
    parser.add_argument("--conn-per-client", type=int, default=256)
    parser.add_argument("--limit-exempt", action="append", default=[], metavar="CIDR")
    parser.add_argument("--trusted-proxy", action="append", default=[], metavar="CIDR")
    parser.add_argument("--access-log", action="store_true")
    parser.add_argument("--check", action="store_true", help="render, run nginx -t, exit")
    options = parser.parse_args(argv)
    proxy = FrontProxy(
        listen=options.listen,
        upstream=options.upstream
        or os.environ.get("PROXY_UPSTREAM", "127.0.0.1:8000").replace(" ", "").split(","),
        runtime_dir=options.runtime_dir,
        conn_per_client=options.conn_per_client,
        limit_exempt=options.limit_exempt,
        trusted_proxies=options.trusted_proxy,
        access_log=options.access_log,
    )
    if options.check:
        proxy.check()
        proxy.stop()
        return 0
    return _serve(proxy, command)


def _serve(proxy: FrontProxy, command: list[str]) -> int:
    """Run nginx (and `command`, say gunicorn) until a signal or until either exits; on
    SIGTERM, nginx stops taking requests first, then the command drains its own."""
    received: list[int] = []
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda signum, _: received.append(signum))
    child = subprocess.Popen(command) if command else None
    try:
        proxy.start()
    except Exception:
        if child is not None:
            child.terminate()
            child.wait()
        raise
    upstreams = ", ".join(proxy.upstreams)
    print(f"front proxy: nginx on {proxy.listen} -> {upstreams}", file=sys.stderr)
    status = 0
    while not received:
        assert proxy.process is not None
        if proxy.process.poll() is not None:
            status = proxy.process.returncode or 1
            break
        if child is not None and child.poll() is not None:
            status = child.returncode or 1
            break
        time.sleep(0.2)
    graceful = signal.SIGINT not in received
    proxy.stop(graceful=graceful)
    if child is not None and child.poll() is None:
        child.send_signal(signal.SIGTERM if graceful else signal.SIGINT)
        child.wait()
    return status


if __name__ == "__main__":
    sys.exit(main())
