#!/usr/bin/env python3
"""Validates every bucket-settings file of deployment/s3/ against a real moto S3.

Starts `moto_server` on a free loopback port, creates a bucket, applies each file with
boto3 (whose client-side validation checks the request shapes of botocore's S3 model,
the same ones `aws s3api` uses), reads each setting back and compares it, and checks
that the lifecycle rules are coherent. Every *.json / *.json.tpl file here must be
covered: an unknown file fails the check. Exit code 0 when everything holds.

Usage: python3 deployment/s3/check.py   (needs moto[server] and boto3)
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUCKET = "workspace-sync-check"
FAILURES = []


def check(cond, what):
    print(("ok:   " if cond else "FAIL: ") + what)
    if not cond:
        FAILURES.append(what)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto():
    port = free_port()
    try:
        proc = subprocess.Popen(
            ["moto_server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        sys.exit("moto_server not found: pip install 'moto[server]' (scripts/setup.sh does)")
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"moto_server exited at start with {proc.returncode}")
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=2)
            return proc, url
        except Exception:
            time.sleep(0.1)
    proc.kill()
    sys.exit("moto_server did not answer within 60 s")


def render(path, **values):
    """Renders a Terraform-style `${name}` template; every placeholder must be given."""
    text = path.read_text()
    for k, v in values.items():
        text = text.replace("${" + k + "}", v)
    check("${" not in text, f"{path.name}: every placeholder rendered")
    return json.loads(text)


def load(name):
    return json.loads((HERE / name).read_text())


def lifecycle_is_coherent(cfg):
    rules = cfg["Rules"]
    check(all(r["Status"] == "Enabled" for r in rules), "lifecycle: every rule enabled")
    ids = [r["ID"] for r in rules]
    check(len(ids) == len(set(ids)), "lifecycle: rule ids unique")
    cur = [r for r in rules if r.get("Transitions")]
    check(len(cur) == 1, "lifecycle: one rule transitions current versions")
    if cur:
        r = cur[0]
        t = r["Transitions"][0]
        exp = r.get("Expiration", {}).get("Days")
        check(t["Days"] == 90, "lifecycle: transition after 90 days")
        check(
            t["StorageClass"] in ("GLACIER_IR", "GLACIER", "DEEP_ARCHIVE"),
            "lifecycle: transition to a Glacier class",
        )
        check(
            t["StorageClass"] == "GLACIER_IR",
            "lifecycle: Glacier Instant Retrieval (a restore reads objects with a plain GET)",
        )
        check(exp == 180, "lifecycle: archived objects expire after 180 days")
        check(
            exp is not None and exp - t["Days"] >= 90,
            "lifecycle: objects stay in Glacier IR at least its 90-day minimum",
        )
    nc = [r for r in rules if r.get("NoncurrentVersionExpiration")]
    check(
        len(nc) == 1 and nc[0]["NoncurrentVersionExpiration"]["NoncurrentDays"] == 30,
        "lifecycle: noncurrent versions expire after 30 days",
    )
    markers = [r for r in rules if r.get("Expiration", {}).get("ExpiredObjectDeleteMarker")]
    check(
        all("Days" not in r["Expiration"] for r in markers),
        "lifecycle: ExpiredObjectDeleteMarker is not combined with Days in one rule",
    )


def main():
    import boto3

    handled = set()
    proc, url = start_moto()
    try:
        kw = dict(
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        s3 = boto3.client("s3", **kw)
        kms = boto3.client("kms", **kw)
        s3.create_bucket(Bucket=BUCKET)

        name = "versioning.json"
        handled.add(name)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration=load(name))
        got = s3.get_bucket_versioning(Bucket=BUCKET)
        check(got.get("Status") == "Enabled", f"{name}: versioning enabled")

        name = "lifecycle.json"
        handled.add(name)
        cfg = load(name)
        lifecycle_is_coherent(cfg)
        s3.put_bucket_lifecycle_configuration(Bucket=BUCKET, LifecycleConfiguration=cfg)
        got = s3.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]
        check(
            sorted(r["ID"] for r in got) == sorted(r["ID"] for r in cfg["Rules"]),
            f"{name}: applied and read back ({len(got)} rules)",
        )

        name = "encryption-aes256.json"
        handled.add(name)
        s3.put_bucket_encryption(Bucket=BUCKET, ServerSideEncryptionConfiguration=load(name))
        got = s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]
        algo = got["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"]
        check(algo == "AES256", f"{name}: default encryption AES256")

        name = "encryption-kms.json.tpl"
        handled.add(name)
        key_arn = kms.create_key(Description="workspace sync check")["KeyMetadata"]["Arn"]
        s3.put_bucket_encryption(
            Bucket=BUCKET,
            ServerSideEncryptionConfiguration=render(HERE / name, kms_key_arn=key_arn),
        )
        got = s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]
        d = got["Rules"][0]["ApplyServerSideEncryptionByDefault"]
        check(
            d["SSEAlgorithm"] == "aws:kms" and d.get("KMSMasterKeyID") == key_arn,
            f"{name}: default encryption aws:kms with the key",
        )

        name = "public-access-block.json"
        handled.add(name)
        s3.put_public_access_block(Bucket=BUCKET, PublicAccessBlockConfiguration=load(name))
        got = s3.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"]
        check(
            len(got) == 4 and all(v is True for v in got.values()),
            f"{name}: all four blocks on",
        )

        name = "ownership-controls.json"
        handled.add(name)
        s3.put_bucket_ownership_controls(Bucket=BUCKET, OwnershipControls=load(name))
        got = s3.get_bucket_ownership_controls(Bucket=BUCKET)["OwnershipControls"]
        check(
            got["Rules"][0]["ObjectOwnership"] == "BucketOwnerEnforced",
            f"{name}: ACLs disabled (bucket owner enforced)",
        )

        # The settings work together (before the TLS-only policy: this client speaks
        # plain HTTP to moto): an object written now is encrypted and versioned.
        s3.put_object(Bucket=BUCKET, Key="workspaces/t/c/manifest.json", Body=b"{}")
        s3.put_object(Bucket=BUCKET, Key="workspaces/t/c/manifest.json", Body=b"{ }")
        versions = s3.list_object_versions(Bucket=BUCKET, Prefix="workspaces/")
        check(len(versions.get("Versions", [])) == 2, "objects are versioned")
        head = s3.head_object(Bucket=BUCKET, Key="workspaces/t/c/manifest.json")
        check(
            head.get("ServerSideEncryption") in ("aws:kms", "AES256"),
            "objects are encrypted by default",
        )

        name = "bucket-policy.json.tpl"
        handled.add(name)
        policy = render(HERE / name, bucket=BUCKET, partition="aws")
        s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(policy))
        got = json.loads(s3.get_bucket_policy(Bucket=BUCKET)["Policy"])
        tls = [
            s
            for s in got["Statement"]
            if s["Effect"] == "Deny"
            and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
        ]
        check(len(tls) == 1, f"{name}: denies every request without TLS")
        check(
            all(s["Effect"] == "Deny" for s in got["Statement"]),
            f"{name}: only Deny statements (nothing public, allowed under the access block)",
        )
        # moto evaluates bucket policies: the same plain-HTTP write is now refused.
        from botocore.exceptions import ClientError

        try:
            s3.put_object(Bucket=BUCKET, Key="workspaces/t/c/manifest.json", Body=b"x")
            denied = False
        except ClientError as e:
            denied = e.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        check(denied, f"{name}: a request without TLS is refused (403)")

    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()

    files = {p.name for p in HERE.iterdir() if p.name.endswith((".json", ".json.tpl"))}
    check(files == handled, f"every settings file is checked (unchecked: {sorted(files - handled)})")
    if FAILURES:
        print(f"{len(FAILURES)} check(s) failed", file=sys.stderr)
        return 1
    print("all bucket settings valid")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    sys.exit(main())
