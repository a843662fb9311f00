"""nginx in front of gunicorn, as deployed: the committed deploy/nginx/mosaic.conf serves
rater images and tiles byte-exact through X-Accel-Redirect under the same opaque URLs,
and its internal media location cannot be requested from outside.

Needs Debian's nginx (`/usr/sbin/nginx`, installed by .ci/run); skipped without it. The
test runs its own nginx and gunicorn on free loopback ports, never the system services.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.db import connection

from studies.models import ImageAsset
from studies.services import image_tiles_build
from tests.conftest import _database_url
from tests.factories import ImageAssetFactory
from tests.test_production import SECRET, _clean_env, _free_port

NGINX = Path("/usr/sbin/nginx")
REPO = Path(__file__).resolve().parents[1]
COMMITTED_CONF = REPO / "deploy" / "nginx" / "mosaic.conf"

needs_nginx = pytest.mark.skipif(
    not NGINX.exists(), reason="nginx is not installed (Debian package 'nginx'; .ci/run installs it)"
)


def _replace(pattern: str, replacement: str, text: str, *, count: int) -> str:
    """re.subn that insists on the expected number of matches, so that a change in the
    committed file's shape fails here instead of silently testing something else."""
    new, found = re.subn(pattern, replacement, text, flags=re.MULTILINE)
    assert found == count, f"{COMMITTED_CONF.name}: expected {count} match(es) of {pattern!r}, found {found}"
    return new


def _site_conf(*, var_dir: Path, web_port: int, http_port: int, tls_port: int, cert: Path | None) -> str:
    """The committed site file with only machine-specific values replaced: the upstream
    port, the /srv/mosaic/var paths and the listen ports. Without `cert` the TLS server
    speaks plain HTTP (the location and proxy blocks are what the request test checks)."""
    text = COMMITTED_CONF.read_text()
    text = _replace(r"^(\s*server )127\.0\.0\.1:8000;", rf"\g<1>127.0.0.1:{web_port};", text, count=1)
    text = _replace(r"/srv/mosaic/var/", f"{var_dir}/", text, count=2)
    text = _replace(r"^(\s*)listen 80;", rf"\g<1>listen 127.0.0.1:{http_port};", text, count=1)
    if cert is None:
        text = _replace(r"^(\s*)listen 443 ssl\b[^;]*;", rf"\g<1>listen 127.0.0.1:{tls_port};", text, count=1)
        text = _replace(r"^\s*ssl_certificate(_key)? [^;]*;\n", "", text, count=2)
    else:
        text = _replace(r"^(\s*)listen 443 ", rf"\g<1>listen 127.0.0.1:{tls_port} ", text, count=1)
        text = _replace(r"^(\s*ssl_certificate) [^;]*;", rf"\g<1> {cert};", text, count=1)
        text = _replace(r"^(\s*ssl_certificate_key) [^;]*;", rf"\g<1> {cert};", text, count=1)
    return text


def _env_example(name: str) -> str:
    """A value from deploy/env.example, the file an operator copies to /etc/mosaic/env."""
    for line in (REPO / "deploy" / "env.example").read_text().splitlines():
        if line.startswith(f"{name}="):
            return line.split("=", 1)[1]
    raise AssertionError(f"deploy/env.example sets no {name}")


def _write_nginx_conf(prefix: Path, site: str) -> Path:
    """A main nginx.conf like Debian's /etc/nginx/nginx.conf (mime types, octet-stream by
    default, the site included in `http`), with every path inside `prefix`."""
    (prefix / "site.conf").write_text(site)
    # As root, nginx workers switch to 'nobody', who cannot read pytest's private tmp
    # folders; in production they run as www-data and read the mosaic user's files.
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"""{user}worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log;
events {{ worker_connections 64; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {prefix}/site.conf;
}}
"""
    )
    return conf


def _wait_for_port(port: int, process: subprocess.Popen, log: Path, *, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            assert process.poll() is None, f"exited with {process.returncode}:\n{log.read_text(errors='replace')}"
            assert time.monotonic() < deadline, f"nothing listens on 127.0.0.1:{port}:\n{log.read_text()}"
            time.sleep(0.1)


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@contextmanager
def _running(args: list[str], log: Path, port: int, **popen) -> Iterator[subprocess.Popen]:
    with log.open("wb") as log_file:
        process = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT, **popen)
    try:
        _wait_for_port(port, process, log)
        yield process
    finally:
        _stop(process)


def _test_database_url() -> str:
    """The database pytest-django created, for the gunicorn process."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    return _database_url(db)


def _get(port: int, path: str) -> tuple[int, http.client.HTTPMessage, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


@needs_nginx
@pytest.mark.django_db(transaction=True)
def test_nginx_serves_images_and_tiles_byte_exact_under_opaque_urls_and_hides_protected_media(tmp_path, media_root):
    # MOSAIC_VAR_DIR=tmp_path puts gunicorn's MEDIA_ROOT on the autouse media_root fixture,
    # where the factory and the tile builder below write.
    assert media_root == tmp_path / "media"
    asset = ImageAssetFactory(width=600, height=300, seed=5)
    image_tiles_build(asset=asset)
    asset.refresh_from_db()
    assert asset.tile_status == ImageAsset.TileStatus.DONE
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "probe.css").write_text("body { color: black; }\n")

    accel = _env_example("MOSAIC_MEDIA_ACCEL_PREFIX")
    protected = accel.rstrip("/") + "/"  # the internal location in mosaic.conf
    web_port, http_port, nginx_port = _free_port(), _free_port(), _free_port()
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    conf = _write_nginx_conf(
        prefix, _site_conf(var_dir=tmp_path, web_port=web_port, http_port=http_port, tls_port=nginx_port, cert=None)
    )
    env = _clean_env(
        DJANGO_ENV="production",
        DJANGO_SECRET_KEY=SECRET,
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        MOSAIC_VAR_DIR=str(tmp_path),
        MOSAIC_MEDIA_ACCEL_PREFIX=accel,
        DATABASE_URL=_test_database_url(),
        GUNICORN_BIND=f"127.0.0.1:{web_port}",
        GUNICORN_WORKERS="1",
        # The test speaks plain HTTP to nginx (X-Forwarded-Proto: http); TLS is nginx's job
        # and the certificate lines are checked by the nginx -t test below.
        DJANGO_SECURE_SSL_REDIRECT="false",
    )
    gunicorn = [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "config.wsgi"]
    nginx = [str(NGINX), "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf), "-g", "daemon off;"]
    with (
        _running(gunicorn, tmp_path / "gunicorn.log", web_port, cwd=REPO, env=env),
        _running(nginx, prefix / "stderr.log", nginx_port),
    ):
        # gunicorn alone answers with the hand-off and no bytes: what follows comes from nginx.
        status, headers, body = _get(web_port, f"/img/{asset.token}.png")
        assert (status, body) == (200, b"")
        assert headers["X-Accel-Redirect"] == f"{protected}{asset.file.name}"

        original = Path(asset.file.path).read_bytes()
        status, headers, body = _get(nginx_port, f"/img/{asset.token}.png")
        assert status == 200, (prefix / "error.log").read_text()
        assert body == original
        assert headers["Content-Type"] == "image/png"
        assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert "X-Accel-Redirect" not in headers and "Content-Disposition" not in headers
        assert asset.sha256 not in str(headers) and "images/" not in str(headers)

        status, headers, body = _get(nginx_port, f"/tiles/{asset.token}.dzi")
        assert status == 200
        assert body == (media_root / asset.tiles_dir / "pyramid.dzi").read_bytes()
        assert headers["Content-Type"].startswith("application/xml")
        # Top level (ceil(log2(600)) = 10), second column, in lossless WebP (the default).
        tile = "pyramid_files/10/1_0.webp"
        status, headers, body = _get(nginx_port, f"/tiles/{asset.token}_files/10/1_0.webp")
        assert status == 200
        assert body == (media_root / asset.tiles_dir / tile).read_bytes()
        assert headers["Content-Type"] == "image/webp"
        assert "immutable" in headers["Cache-Control"]
        assert asset.sha256 not in str(headers) and "tiles/" not in str(headers)

        # The hand-off location is internal: asked for directly, nginx refuses it.
        assert _get(nginx_port, f"{protected}{asset.file.name}")[0] == 404
        assert _get(nginx_port, f"{protected}{asset.tiles_dir}/{tile}")[0] == 404
        assert _get(nginx_port, f"/img/{'x' * 32}.png")[0] == 404
        assert _get(nginx_port, f"/tiles/{asset.token}_files/10/..%2F..%2Fpyramid.dzi")[0] == 404

        status, _, body = _get(nginx_port, "/static/probe.css")
        assert status == 200 and body == b"body { color: black; }\n"
        # The port-80 server only redirects to https.
        status, headers, _ = _get(http_port, f"/img/{asset.token}.png")
        assert status == 301 and headers["Location"].startswith("https://")


@needs_nginx
@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is needed to make a throwaway certificate")
def test_committed_nginx_config_passes_nginx_t_with_its_tls_server(tmp_path):
    cert = tmp_path / "cert.pem"
    openssl = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1".split()
    subprocess.run([*openssl, "-keyout", str(cert), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    site = _site_conf(var_dir=tmp_path, web_port=_free_port(), http_port=_free_port(), tls_port=_free_port(), cert=cert)
    conf = _write_nginx_conf(prefix, site)
    result = subprocess.run(
        [str(NGINX), "-t", "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
