#!/usr/bin/env python3
"""Derive workspace-seccomp.json from Docker's default profile by removal only.

Usage: derive.py [--check]

Source (SOURCE below, recorded so that a review can tell which Docker the profile
follows): docker-default-26.1.json is moby v26.1.5 profiles/seccomp/default.json, byte for
byte as shipped by Debian trixie's golang-github-docker-docker-dev
26.1.5+dfsg1-9+deb13u1 (/usr/share/gocode/src/github.com/docker/docker/profiles/
seccomp/default.json). The hosts run the ECS-optimized Amazon Linux 2023 AMI, whose
Docker is the 25.x line; Debian ships no 25.x, and 26.1 is the closest later release, so
every syscall Docker 25 allows is allowed here too (profiles only grew between them;
io_uring left the default in 25.0). The Packer build prints the AMI's Docker version and
refuses one older than MIN_DOCKER (packer/workspace-host.pkr.hcl). Moving to another
Docker: replace the upstream file, update SOURCE, run this script, copy the result to
ami/ (tests/infra checks both).

The upstream profile is kept as is, with every capability-conditional group
("includes"/"excludes" on "caps") untouched: a host-wide profile also applies to the ECS
agent and the awsvpc pause container, which rely on them. Only unconditional permissions
are removed:

- ptrace, process_vm_readv, process_vm_writev (the unconditional group, minKernel 4.8):
  inspection of sibling processes, i.e. of the other processes of a workspace; still
  allowed to a container granted CAP_SYS_PTRACE.
- io_uring_setup / io_uring_enter / io_uring_register: a large, frequently exploited
  kernel surface. Docker's default no longer allows them since 25.0; the removal stays so
  that an upstream that re-allowed them would still be refused.

With --check, exit 1 if the committed profile differs from the derived one.
"""
import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
SOURCE = {
    "moby": "26.1.5",
    "debian_package": "golang-github-docker-docker-dev 26.1.5+dfsg1-9+deb13u1 (trixie)",
}
MIN_DOCKER = "25.0"
UPSTREAM = HERE / "docker-default-26.1.json"
TARGET = HERE / "workspace-seccomp.json"
REMOVED = {"io_uring_setup", "io_uring_enter", "io_uring_register"}
CROSS_PROCESS = {"ptrace", "process_vm_readv", "process_vm_writev"}


def derive():
    profile = json.loads(UPSTREAM.read_text())
    kept = []
    for rule in profile["syscalls"]:
        caps = (rule.get("includes") or {}).get("caps") or (rule.get("excludes") or {}).get("caps")
        if not caps:
            if rule["action"] == "SCMP_ACT_ALLOW" and set(rule["names"]) <= CROSS_PROCESS:
                continue
            rule = dict(rule, names=[n for n in rule["names"] if n not in REMOVED])
            if not rule["names"]:
                continue
        kept.append(rule)
    profile["syscalls"] = kept
    unconditional = {n for r in kept if r["action"] == "SCMP_ACT_ALLOW"
                     and not ((r.get("includes") or {}).get("caps") or (r.get("excludes") or {}).get("caps"))
                     for n in r["names"]}
    leaked = unconditional & (REMOVED | CROSS_PROCESS)
    if leaked:
        raise SystemExit(f"upstream allows {sorted(leaked)} in a group this script does not remove")
    return json.dumps(profile, indent=2) + "\n"


def main():
    text = derive()
    if "--check" in sys.argv[1:]:
        if TARGET.read_text() != text:
            print(f"{TARGET} is not derive.py's output; run deployment/seccomp/derive.py", file=sys.stderr)
            return 1
        print(f"seccomp profile matches its derivation from moby {SOURCE['moby']} ({SOURCE['debian_package']})")
        return 0
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
