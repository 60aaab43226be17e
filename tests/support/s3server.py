"""moto's S3 server as a real process on loopback, for the object-storage tests.

Started with ``S3Server.start()`` (``-p 0``: the port it prints), stopped by its PID. Its
secret key stays out of reprs, so a failing test's report does not print it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REGION = "us-east-1"
_LISTENING = re.compile(r"Running on (http://127\.0\.0\.1:\d+)")


@dataclass
class S3Server:
    endpoint: str
    access_key_id: str
    secret_access_key: str = field(repr=False)  # never in a failing test's output
    pid: int = 0

    @classmethod
    @contextmanager
    def start(cls) -> Iterator[S3Server]:
        moto = Path(sys.executable).with_name("moto_server")
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            # the first 3 requests (IAM set-up below) go unchecked; every later one is signed
            "INITIAL_NO_AUTH_ACTION_COUNT": "3",
        }
        proc = subprocess.Popen(
            [sys.executable, str(moto), "-H", "127.0.0.1", "-p", "0"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            endpoint = cls._wait_listening(proc)
            key_id, secret = cls._make_user(endpoint)
            yield cls(endpoint, key_id, secret, proc.pid)
        finally:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()

    @staticmethod
    def _wait_listening(proc: subprocess.Popen[str]) -> str:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                raise RuntimeError(f"moto_server exited with {proc.returncode}")
            found = _LISTENING.search(line)
            if found:
                # keep draining its log so the pipe never fills and blocks the server
                import threading

                threading.Thread(target=proc.stdout.read, daemon=True).start()
                return found.group(1)
        raise RuntimeError("moto_server did not start listening within 30 s")

    @staticmethod
    def _make_user(endpoint: str) -> tuple[str, str]:
        import boto3

        iam = boto3.client(
            "iam",
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id="setup",
            aws_secret_access_key="setup",
        )
        iam.create_user(UserName="coc")
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        }
        iam.put_user_policy(UserName="coc", PolicyName="s3", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="coc")["AccessKey"]
        return key["AccessKeyId"], key["SecretAccessKey"]

    def client(self):  # boto3's, for set-up and inspection only
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
        )

    def bucket(self) -> str:
        """A new empty bucket's name."""
        name = f"coc-{secrets.token_hex(4)}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = (
            self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        )
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def env(self, warehouse: str, **extra: str) -> dict[str, str]:
        """The documented variables for a warehouse at ``warehouse`` on this server."""
        return {
            "COC_WAREHOUSE": warehouse,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL": self.endpoint,
            **extra,
        }

    def settings(self, **overrides: object):
        from pipelines.settings import ObjectStoreSettings

        values: dict[str, object] = {
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
            "region": REGION,
            "endpoint_url": self.endpoint,
        }
        return ObjectStoreSettings(**(values | overrides))  # type: ignore[arg-type]
