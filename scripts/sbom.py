#!/usr/bin/env python3
"""The image's SBOM, SPDX 2.3 JSON, on stdout: every crate in the build graph
of the runner-identity binary for one target (normal and build dependencies,
from `cargo metadata`'s resolved graph and Cargo.lock's checksums), and every
other file the image holds, with its SHA-256.

    scripts/sbom.py TARGET IMAGE_PATH=HOST_FILE...

Deterministic: the creation time is SOURCE_DATE_EPOCH, the namespace names
the revision; the same inputs give the same bytes.
"""

import hashlib
import json
import os
import subprocess
import sys
import time


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def metadata(platform):
    return json.loads(
        subprocess.check_output(
            ["cargo", "metadata", "--locked", "--format-version", "1",
             "--filter-platform", platform],
            text=True,
        )
    )


def host_triple():
    for line in subprocess.check_output(["rustc", "-vV"], text=True).splitlines():
        if line.startswith("host: "):
            return line.split()[1]
    sys.exit("rustc -vV names no host")


def build_graph(target):
    """(name, version, checksum, license) of every package the binary's
    build reaches: the target's normal dependencies, and, past a build
    dependency or a proc-macro, the host's (both run on the build machine)."""
    graphs = {"target": metadata(target), "host": metadata(host_triple())}
    meta = graphs["target"]
    packages = {p["id"]: p for g in graphs.values() for p in g["packages"]}

    def proc_macro(pid):
        return any("proc-macro" in t["kind"] for t in packages[pid]["targets"])

    nodes = {
        name: {n["id"]: n for n in g["resolve"]["nodes"]} for name, g in graphs.items()
    }
    root = meta["resolve"]["root"]
    seen, reached, todo = set(), set(), [(root, "target")]
    while todo:
        current, graph = todo.pop()
        if (current, graph) in seen:
            continue
        seen.add((current, graph))
        reached.add(current)
        for dep in nodes[graph][current]["deps"]:
            kinds = {k["kind"] for k in dep["dep_kinds"]}
            # Normal (kind null) and build dependencies; never dev ones.
            # A proc-macro crate is built for the host, with its dependencies.
            if None in kinds:
                todo.append((dep["pkg"], "host" if proc_macro(dep["pkg"]) else graph))
            if "build" in kinds:
                todo.append((dep["pkg"], "host"))
    seen = reached
    checksums = {}
    with open("Cargo.lock") as lock:
        name = version = None
        for line in lock:
            line = line.strip()
            if line == "[[package]]":
                name = version = None
            elif line.startswith("name = "):
                name = line.split('"')[1]
            elif line.startswith('version = "'):
                version = line.split('"')[1]
            elif line.startswith("checksum = "):
                checksums[(name, version)] = line.split('"')[1]
    out = []
    for pid in sorted(seen, key=lambda i: (packages[i]["name"], packages[i]["version"])):
        p = packages[pid]
        out.append((p["name"], p["version"], checksums.get((p["name"], p["version"])),
                    p.get("license")))
    return root, out


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: scripts/sbom.py TARGET IMAGE_PATH=HOST_FILE...")
    target, files = sys.argv[1], sys.argv[2:]
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    revision = os.environ.get("RUNNER_IDENTITY_REVISION", "unknown")
    _, crates = build_graph(target)
    doc = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"runner-identity image ({target})",
        "documentNamespace": f"https://spdx.org/spdxdocs/runner-identity-{revision}-{target}",
        "creationInfo": {
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch)),
            "creators": ["Tool: scripts/sbom.py"],
        },
        "packages": [],
        "files": [],
        "relationships": [],
    }
    for i, (name, version, checksum, license_) in enumerate(crates):
        package = {
            "SPDXID": f"SPDXRef-crate-{i}",
            "name": name,
            "versionInfo": version,
            "downloadLocation": "NOASSERTION",
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": license_ or "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": f"pkg:cargo/{name}@{version}",
            }],
        }
        if checksum:
            package["checksums"] = [{"algorithm": "SHA256", "checksumValue": checksum}]
        doc["packages"].append(package)
        doc["relationships"].append({
            "spdxElementId": "SPDXRef-DOCUMENT",
            "relationshipType": "DESCRIBES",
            "relatedSpdxElement": package["SPDXID"],
        })
    for i, spec in enumerate(sorted(files)):
        image_path, host = spec.split("=", 1)
        doc["files"].append({
            "SPDXID": f"SPDXRef-file-{i}",
            "fileName": image_path,
            "checksums": [{"algorithm": "SHA256", "checksumValue": sha256(host)}],
            "licenseConcluded": "NOASSERTION",
            "copyrightText": "NOASSERTION",
        })
    json.dump(doc, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
