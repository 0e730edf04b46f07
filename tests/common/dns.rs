//! A real authoritative DNS server for the tests (hickory-server): one in-memory zone served
//! over UDP and TCP on a free loopback port, with the TXT records the test gives. It runs on
//! the test's tokio runtime and stops when dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_server::Server;
use hickory_server::net::runtime::TokioRuntimeProvider;
use hickory_server::proto::rr::rdata::{SOA, TXT};
use hickory_server::proto::rr::{LowerName, Name, RData, Record};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};

/// A running DNS server; `addr` is where to ask (UDP and TCP).
pub struct DnsServer {
    pub addr: SocketAddr,
    server: Server<Catalog>,
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.server.shutdown_token().cancel();
    }
}

fn name(s: &str) -> Name {
    let fqdn = if s.ends_with('.') {
        s.to_owned()
    } else {
        format!("{s}.")
    };
    Name::from_ascii(&fqdn).unwrap_or_else(|e| panic!("DNS name {s}: {e}"))
}

/// A TXT value as DNS carries it: strings of at most 255 bytes (a DKIM key is longer).
fn txt(value: &str) -> TXT {
    let chunks: Vec<String> = value
        .as_bytes()
        .chunks(255)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    TXT::new(chunks)
}

impl DnsServer {
    /// Serves zone `origin` (its SOA, and each `(name, value)` of `records` as a TXT record
    /// at that absolute name; a name may have several). Must be called inside a tokio runtime.
    pub async fn start(origin: &str, records: &[(&str, &str)]) -> DnsServer {
        let origin = name(origin);
        let mut zone = InMemoryZoneHandler::<TokioRuntimeProvider>::empty(
            origin.clone(),
            ZoneType::Primary,
            AxfrPolicy::Deny,
        );
        let soa = SOA::new(
            name(&format!("ns.{origin}")),
            name(&format!("hostmaster.{origin}")),
            1,
            3600,
            600,
            86_400,
            60,
        );
        assert!(
            zone.upsert_mut(Record::from_rdata(origin.clone(), 60, RData::SOA(soa)), 1),
            "SOA"
        );
        for (n, value) in records {
            let rec = Record::from_rdata(name(n), 60, RData::TXT(txt(value)));
            assert!(zone.upsert_mut(rec, 1), "TXT {n} {value}");
        }
        let mut catalog = Catalog::new();
        let handler: Arc<dyn ZoneHandler> = Arc::new(zone);
        catalog.upsert(LowerName::new(&origin), vec![handler]);
        let mut server = Server::new(catalog);
        // The same port for UDP and TCP: take a free UDP port, then its TCP twin (retried if
        // something else holds it).
        let mut tries = 0;
        let addr = loop {
            tries += 1;
            let udp = tokio::net::UdpSocket::bind("127.0.0.1:0")
                .await
                .expect("bind a UDP port");
            let addr = udp.local_addr().expect("UDP address");
            match tokio::net::TcpListener::bind(addr).await {
                Ok(tcp) => {
                    server.register_socket(udp);
                    server.register_listener(tcp, Duration::from_secs(5), 16);
                    break addr;
                }
                Err(e) if tries < 20 => {
                    let _ = e;
                    continue;
                }
                Err(e) => panic!("no free UDP+TCP port pair: {e}"),
            }
        };
        DnsServer { addr, server }
    }
}
