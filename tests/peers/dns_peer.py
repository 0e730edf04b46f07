"""A small authoritative DNS server for the package test (scripts/test-deb.sh): TXT records only.

Run it with the venv that scripts/install-peers.sh makes (dnspython):

    target/peers-venv/bin/python tests/peers/dns_peer.py --txt NAME=VALUE [--txt NAME=VALUE ...]

It listens on 127.0.0.1 on one free port, UDP and TCP, prints `READY <port>` on stdout once it
answers, and answers TXT questions for the given names (several --txt with the same name give
several records; a value longer than 255 bytes is split into strings as DNS requires). Any other
name is NXDOMAIN, any other type of a known name an empty answer. SIGTERM stops it.
"""

import argparse
import signal
import socket
import struct
import sys
import threading

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


def txt_strings(value):
    data = value.encode()
    chunks = [data[i:i + 255] for i in range(0, len(data), 255)] or [b""]
    return " ".join('"' + c.decode().replace("\\", "\\\\").replace('"', '\\"') + '"' for c in chunks)


def answer(records, wire):
    try:
        query = dns.message.from_wire(wire)
    except Exception:  # a malformed query gets no answer
        return None
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA
    if not query.question:
        response.set_rcode(dns.rcode.FORMERR)
        return response
    q = query.question[0]
    name = q.name.to_text().lower()
    if name not in records:
        response.set_rcode(dns.rcode.NXDOMAIN)
    elif q.rdtype == dns.rdatatype.TXT:
        rrset = dns.rrset.from_text_list(
            q.name, 60, dns.rdataclass.IN, dns.rdatatype.TXT,
            [txt_strings(v) for v in records[name]])
        response.answer.append(rrset)
    return response


def serve_udp(sock, records):
    while True:
        wire, addr = sock.recvfrom(4096)
        r = answer(records, wire)
        if r is not None:
            sock.sendto(r.to_wire(max_size=65535), addr)


def serve_tcp(sock, records):
    while True:
        conn, _ = sock.accept()
        with conn:
            try:
                head = conn.recv(2)
                if len(head) < 2:
                    continue
                (size,) = struct.unpack("!H", head)
                wire = b""
                while len(wire) < size:
                    more = conn.recv(size - len(wire))
                    if not more:
                        break
                    wire += more
                r = answer(records, wire)
                if r is not None:
                    out = r.to_wire()
                    conn.sendall(struct.pack("!H", len(out)) + out)
            except OSError:
                pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--txt", action="append", default=[], metavar="NAME=VALUE")
    args = ap.parse_args()
    records = {}
    for item in args.txt:
        name, _, value = item.partition("=")
        key = dns.name.from_text(name).to_text().lower()
        records.setdefault(key, []).append(value)

    # One port for both: bind UDP on a free port, then TCP on the same one (retry if taken).
    for _ in range(20):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        port = udp.getsockname()[1]
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            tcp.bind(("127.0.0.1", port))
        except OSError:
            udp.close()
            tcp.close()
            continue
        tcp.listen(16)
        break
    else:
        sys.exit("no free port for UDP and TCP")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    threading.Thread(target=serve_udp, args=(udp, records), daemon=True).start()
    threading.Thread(target=serve_tcp, args=(tcp, records), daemon=True).start()
    print(f"READY {port}", flush=True)
    signal.pause()


if __name__ == "__main__":
    main()
