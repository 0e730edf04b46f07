"""Verifies the DKIM signature of a received message with dkimpy, as a receiving server would.

Run it with the venv that scripts/install-peers.sh makes:

    target/peers-venv/bin/python tests/peers/dkim_verify.py --message FILE \
        --name SELECTOR._domainkey.DOMAIN --record "v=DKIM1; k=rsa; p=..." [--tamper]

There is no DNS: the public key record is given on the command line and handed to dkimpy by a
lookup function, which refuses any other name than --name (so the message's own d= and s= are
checked too). --tamper changes one letter of the body before verifying (the signature must
then fail). Prints `PASS <algorithm>` and exits 0, or `FAIL <reason>` and exits 1.
"""

import argparse
import re
import sys

import dkim


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--message", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--record", required=True)
    ap.add_argument("--tamper", action="store_true")
    args = ap.parse_args()

    with open(args.message, "rb") as f:
        message = f.read()
    if args.tamper:
        head, sep, body = message.partition(b"\r\n\r\n")
        # One letter of the body changed, as a relay rewriting a word would.
        i = max(body.rfind(bytes([c])) for c in b"aeiou")
        if i < 0:
            print("FAIL nothing to tamper with")
            return 1
        body = body[:i] + b"X" + body[i + 1:]
        message = head + sep + body

    asked = []

    def lookup(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode("ascii")
        asked.append(name)
        if name.rstrip(".").lower() != args.name.lower():
            return None
        return args.record.encode("ascii")

    d = dkim.DKIM(message)
    try:
        ok = d.verify(dnsfunc=lookup)
    except dkim.DKIMException as e:
        print(f"FAIL {e} (asked {asked})")
        return 1
    if not ok:
        print(f"FAIL signature does not verify (asked {asked})")
        return 1
    print("PASS " + re.search(rb"a=([a-z0-9-]+)", message).group(1).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
