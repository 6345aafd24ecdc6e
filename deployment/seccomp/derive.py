#!/usr/bin/env python3
"""Derive workspace-seccomp.json from Docker's default profile by removal only.

Usage: derive.py [--check]

The upstream profile (docker-default-20.10.json, copied from moby v20.10.24
profiles/seccomp/default.json as shipped by Debian's golang-github-docker-docker-dev)
is kept as is, with every capability-conditional group ("includes"/"excludes" on
"caps") untouched: a host-wide profile also applies to the ECS agent and the awsvpc
pause container, which rely on them. Only unconditional permissions are removed:

- ptrace (unconditional entry, minKernel 4.8): debugging/inspection of sibling
  processes; still allowed to a container granted CAP_SYS_PTRACE.
- io_uring_setup / io_uring_enter / io_uring_register: a large, frequently
  exploited kernel surface; libuv and others fall back to epoll/threads.

With --check, exit 1 if the committed profile differs from the derived one.
"""
import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
UPSTREAM = HERE / "docker-default-20.10.json"
TARGET = HERE / "workspace-seccomp.json"
REMOVED = {"io_uring_setup", "io_uring_enter", "io_uring_register"}


def derive():
    profile = json.loads(UPSTREAM.read_text())
    kept = []
    for rule in profile["syscalls"]:
        caps = (rule.get("includes") or {}).get("caps") or (rule.get("excludes") or {}).get("caps")
        if not caps:
            if rule["names"] == ["ptrace"]:
                continue
            rule = dict(rule, names=[n for n in rule["names"] if n not in REMOVED])
        kept.append(rule)
    profile["syscalls"] = kept
    return json.dumps(profile, indent=2) + "\n"


def main():
    text = derive()
    if "--check" in sys.argv[1:]:
        if TARGET.read_text() != text:
            print(f"{TARGET} is not derive.py's output; run deployment/seccomp/derive.py", file=sys.stderr)
            return 1
        print("seccomp profile matches its derivation")
        return 0
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
