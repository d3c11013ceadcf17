"""The floor the portal is compared with: bare paramiko, run as its own process (Python
start and imports included, as users run a script), on the same lab hosts and the same
`ip` commands.

    python bench/peers.py MODE SPEC.json

MODE: ``fanout`` (one thread per host, a fresh connection each) or ``sequential`` (one host
after another). SPEC.json: {"key": private key path, "hosts": [{"address", "host_key"
(OpenSSH public key line), "command"}]}. Host keys are checked (RejectPolicy, pinned keys),
as the portal does. Prints one JSON line: {"wall": seconds inside the process, "failed":
[addresses], "outputs": bytes read}.
"""

from __future__ import annotations

import base64
import json
import sys
import threading
import time

import paramiko


def one(host: dict, key: paramiko.PKey, results: dict) -> None:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    kind, blob = host["host_key"].split()[:2]
    client.get_host_keys().add(host["address"], kind,
                               paramiko.PKey.from_type_string(kind, base64.b64decode(blob)))
    try:
        client.connect(host["address"], username="root", pkey=key, allow_agent=False,
                       look_for_keys=False, timeout=30, banner_timeout=30, auth_timeout=30)
        _stdin, stdout, stderr = client.exec_command(host["command"], timeout=60)
        out = stdout.read()
        stderr.read()
        status = stdout.channel.recv_exit_status()
        results[host["address"]] = (status, len(out))
    except Exception as exc:  # noqa: BLE001 - a failed host is reported, not raised
        results[host["address"]] = (f"{type(exc).__name__}: {exc}", 0)
    finally:
        client.close()


def main(argv: list[str]) -> int:
    mode, spec_path = argv[1], argv[2]
    with open(spec_path) as handle:
        spec = json.load(handle)
    key = paramiko.Ed25519Key.from_private_key_file(spec["key"])
    results: dict = {}
    started = time.perf_counter()
    if mode == "fanout":
        threads = [threading.Thread(target=one, args=(h, key, results)) for h in spec["hosts"]]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    elif mode == "sequential":
        for host in spec["hosts"]:
            one(host, key, results)
    else:
        raise SystemExit(f"unknown mode {mode}")
    wall = time.perf_counter() - started
    failed = {a: r[0] for a, r in results.items() if r[0] != 0}
    failed.update({h["address"]: "no result" for h in spec["hosts"]
                   if h["address"] not in results})
    print(json.dumps({"wall": wall, "failed": failed,
                      "outputs": sum(r[1] for r in results.values())}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
