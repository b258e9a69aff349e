//! [`TcpCommunicator`]: the collectives as ring algorithms over TCP (the CPU implementation,
//! for tests and CPU-only clusters).
//!
//! Rendezvous: rank 0 listens on MASTER_ADDR:MASTER_PORT; every other rank connects (retrying
//! until the timeout) and sends its rank and the port of its own ring listener; rank 0 replies
//! with every rank's address. Each rank then connects to rank + 1 and accepts rank − 1.
//! All-reduce is reduce-scatter then all-gather around the ring (each rank sends 2(N−1)/N of
//! the buffer, as NCCL's ring does). Every message carries the operation and its length, so
//! ranks that call different collectives fail with an error instead of mixing data.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use super::{Communicator, DistEnv, DistError};

/// Operation tags of the message headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
enum Op {
    ReduceScatter = 1,
    AllGather = 2,
    Broadcast = 3,
    Hello = 4,
}

pub struct TcpCommunicator {
    rank: usize,
    world_size: usize,
    timeout: Duration,
    /// To rank + 1 (None in a world of one).
    next: Option<TcpStream>,
    /// From rank − 1.
    prev: Option<TcpStream>,
}

impl std::fmt::Debug for TcpCommunicator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TcpCommunicator(rank {}/{})", self.rank, self.world_size)
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => "timed out".into(),
        ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::BrokenPipe => {
            format!("closed the connection (did it exit?): {e}")
        }
        _ => e.to_string(),
    }
}

/// Connects to `addr`, retrying until `deadline` (the peer may not be listening yet).
fn connect_until(addr: SocketAddr, deadline: Instant) -> std::io::Result<TcpStream> {
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Accepts one connection on `listener` before `deadline`.
fn accept_until(listener: &TcpListener, deadline: Instant) -> std::io::Result<TcpStream> {
    listener.set_nonblocking(true)?;
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false)?;
                return Ok(s);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    return Err(std::io::Error::new(ErrorKind::TimedOut, "nobody connected"));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e),
        }
    }
}

fn resolve(addr: &str, port: u16) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    (addr, port)
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or_else(|| format!("{addr} resolves to no address"))
}

impl TcpCommunicator {
    /// Joins the run described by `env` (blocks until every rank has joined, or fails after
    /// `env.timeout`).
    pub fn connect(env: &DistEnv) -> Result<Self, DistError> {
        let (rank, n) = (env.rank, env.world_size);
        let mut comm = Self {
            rank,
            world_size: n,
            timeout: env.timeout,
            next: None,
            prev: None,
        };
        if n == 1 {
            return Ok(comm);
        }
        let master = format!("{}:{}", env.master_addr, env.master_port);
        let fail = |reason: String| DistError::Rendezvous {
            rank,
            addr: master.clone(),
            reason,
        };
        let deadline = Instant::now() + env.timeout;
        let master_addr = resolve(&env.master_addr, env.master_port).map_err(&fail)?;
        let bind_ip: IpAddr = if master_addr.ip().is_loopback() {
            master_addr.ip()
        } else {
            [0, 0, 0, 0].into()
        };
        let ring_listener = TcpListener::bind((bind_ip, 0))
            .map_err(|e| fail(format!("binding the ring listener: {e}")))?;
        let ring_port = ring_listener
            .local_addr()
            .map_err(|e| fail(e.to_string()))?
            .port();

        let table = if rank == 0 {
            Self::gather_addresses(master_addr, ring_port, n, deadline).map_err(&fail)?
        } else {
            Self::send_address(master_addr, rank, ring_port, n, deadline).map_err(&fail)?
        };

        // The ring: connect forward, then accept from behind (connecting only needs the
        // peer's listener, which exists before the rendezvous, so this cannot deadlock).
        let next_rank = (rank + 1) % n;
        let prev_rank = (rank + n - 1) % n;
        let mut next = connect_until(table[next_rank], deadline)
            .map_err(|e| comm.peer_error(next_rank, "could not be reached", &e))?;
        let mut prev = accept_until(&ring_listener, deadline)
            .map_err(|e| comm.peer_error(prev_rank, "did not connect", &e))?;
        for s in [&mut next, &mut prev] {
            s.set_nodelay(true).ok();
            s.set_read_timeout(Some(env.timeout)).ok();
            s.set_write_timeout(Some(env.timeout)).ok();
        }
        comm.next = Some(next);
        comm.prev = Some(prev);
        // Each rank tells its successor who it is; a wrong rank means a wrong address table.
        comm.send(Op::Hello, &[rank as f32])?;
        let mut hello = [0f32];
        comm.recv(Op::Hello, &mut hello)?;
        if hello[0] as usize != prev_rank {
            return Err(comm.usage(
                "rendezvous",
                format!("expected rank {prev_rank} behind me, got {}", hello[0]),
            ));
        }
        Ok(comm)
    }

    /// Rank 0: accepts the other ranks and sends everyone the address table.
    fn gather_addresses(
        master: SocketAddr,
        own_port: u16,
        n: usize,
        deadline: Instant,
    ) -> Result<Vec<SocketAddr>, String> {
        let listener = TcpListener::bind(master).map_err(|e| format!("listening: {e}"))?;
        let mut table: Vec<Option<SocketAddr>> = vec![None; n];
        table[0] = Some(SocketAddr::new(master.ip(), own_port));
        let mut peers = Vec::new();
        while peers.len() < n - 1 {
            let stream = accept_until(&listener, deadline).map_err(|e| {
                let missing: Vec<usize> = (1..n).filter(|r| table[*r].is_none()).collect();
                format!("ranks {missing:?} did not join: {}", io_reason(&e))
            })?;
            let peer_ip = stream.peer_addr().map_err(|e| e.to_string())?.ip();
            let mut reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
            let mut line = String::new();
            reader.read_line(&mut line).map_err(|e| e.to_string())?;
            let fields: Vec<usize> = line
                .split_whitespace()
                .filter_map(|f| f.parse().ok())
                .collect();
            let [r, port, world] = fields[..] else {
                return Err(format!("malformed join message {line:?}"));
            };
            if world != n {
                return Err(format!("rank {r} has WORLD_SIZE {world}, rank 0 has {n}"));
            }
            if r == 0 || r >= n || table[r].is_some() {
                return Err(format!("rank {r} joined twice or is out of range"));
            }
            table[r] = Some(SocketAddr::new(peer_ip, port as u16));
            peers.push(stream);
        }
        let table: Vec<SocketAddr> = table.into_iter().map(|a| a.expect("all joined")).collect();
        let text: String = table.iter().map(|a| format!("{a}\n")).collect();
        for mut p in peers {
            p.write_all(text.as_bytes()).map_err(|e| e.to_string())?;
        }
        Ok(table)
    }

    /// Ranks > 0: join at rank 0 and read the address table.
    fn send_address(
        master: SocketAddr,
        rank: usize,
        own_port: u16,
        n: usize,
        deadline: Instant,
    ) -> Result<Vec<SocketAddr>, String> {
        let mut stream = connect_until(master, deadline)
            .map_err(|e| format!("rank 0 not reachable: {}", io_reason(&e)))?;
        stream
            .set_read_timeout(Some(
                deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1)),
            ))
            .ok();
        writeln!(stream, "{rank} {own_port} {n}").map_err(|e| e.to_string())?;
        let mut table = Vec::with_capacity(n);
        for line in BufReader::new(stream).lines().take(n) {
            let line =
                line.map_err(|e| format!("waiting for the address table: {}", io_reason(&e)))?;
            table.push(
                line.trim()
                    .parse()
                    .map_err(|e| format!("bad address {line:?}: {e}"))?,
            );
        }
        if table.len() != n {
            return Err("rank 0 closed the connection before sending every address".into());
        }
        Ok(table)
    }

    fn usage(&self, op: &'static str, reason: String) -> DistError {
        DistError::Usage {
            rank: self.rank,
            op,
            reason,
        }
    }

    fn peer_error(&self, peer: usize, what: &'static str, e: &std::io::Error) -> DistError {
        DistError::Peer {
            rank: self.rank,
            peer,
            what,
            timeout: self.timeout,
            reason: io_reason(e),
        }
    }

    /// `whole` must hold one shard of `shard` values per rank.
    fn check_shards(
        &self,
        op: &'static str,
        what: &str,
        whole: usize,
        shard: usize,
    ) -> Result<(), DistError> {
        let n = self.world_size;
        if whole == shard * n {
            return Ok(());
        }
        Err(self.usage(
            op,
            format!("{what} has {whole} values, not {n} shards of {shard}"),
        ))
    }

    fn next_rank(&self) -> usize {
        (self.rank + 1) % self.world_size
    }

    fn prev_rank(&self) -> usize {
        (self.rank + self.world_size - 1) % self.world_size
    }

    fn encode(op: Op, values: &[f32]) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(12 + 4 * values.len());
        bytes.extend_from_slice(&(op as u32).to_le_bytes());
        bytes.extend_from_slice(&(values.len() as u64).to_le_bytes());
        for v in values {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        bytes
    }

    fn send(&mut self, op: Op, values: &[f32]) -> Result<(), DistError> {
        let bytes = Self::encode(op, values);
        let peer = self.next_rank();
        let sent = self.next.as_mut().expect("connected").write_all(&bytes);
        sent.map_err(|e| self.peer_error(peer, "stopped receiving", &e))
    }

    /// Receives one message of `op` with exactly `out.len()` values; `combine(out, value)`
    /// stores or adds each.
    fn recv_with(
        &mut self,
        op: Op,
        out: &mut [f32],
        combine: fn(&mut f32, f32),
    ) -> Result<(), DistError> {
        let peer = self.prev_rank();
        let mut header = [0u8; 12];
        let read = self
            .prev
            .as_mut()
            .expect("connected")
            .read_exact(&mut header);
        read.map_err(|e| self.peer_error(peer, "sent nothing", &e))?;
        let tag = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
        let len = u64::from_le_bytes(header[4..].try_into().expect("8 bytes")) as usize;
        if tag != op as u32 || len != out.len() {
            return Err(self.usage(
                "collective",
                format!(
                    "rank {peer} sent op {tag} with {len} values where {op:?} with {} was expected \
                     (the ranks called different collectives or lengths)",
                    out.len()
                ),
            ));
        }
        let mut bytes = vec![0u8; 4 * len];
        let stream = self.prev.as_mut().expect("connected");
        if let Err(e) = stream.read_exact(&mut bytes) {
            return Err(self.peer_error(peer, "stopped mid-message", &e));
        }
        for (o, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
            combine(o, f32::from_le_bytes(b.try_into().expect("4 bytes")));
        }
        Ok(())
    }

    fn recv(&mut self, op: Op, out: &mut [f32]) -> Result<(), DistError> {
        self.recv_with(op, out, |o, v| *o = v)
    }

    /// Sends `outgoing` forward while receiving from behind into `incoming` (a thread does
    /// the send, so two ranks sending large chunks to each other cannot block each other).
    fn exchange(
        &mut self,
        op: Op,
        outgoing: &[f32],
        incoming: &mut [f32],
        combine: fn(&mut f32, f32),
    ) -> Result<(), DistError> {
        let bytes = Self::encode(op, outgoing);
        let peer = self.next_rank();
        let mut next = self.next.take().expect("connected");
        let (next, sent, received) = std::thread::scope(|s| {
            let sender = s.spawn(move || {
                let r = next.write_all(&bytes);
                (next, r)
            });
            let received = self.recv_with(op, incoming, combine);
            let (next, sent) = sender.join().expect("the send thread does not panic");
            (next, sent, received)
        });
        self.next = Some(next);
        sent.map_err(|e| self.peer_error(peer, "stopped receiving", &e))?;
        received
    }

    fn chunk(&self, len: usize, i: usize) -> std::ops::Range<usize> {
        let n = self.world_size;
        (i * len / n)..((i + 1) * len / n)
    }

    /// Ring reduce-scatter: afterwards this rank's chunk `(rank + 1 + shift) mod n` holds the
    /// sum over ranks.
    fn ring_reduce_scatter(&mut self, buf: &mut [f32], shift: usize) -> Result<(), DistError> {
        let n = self.world_size;
        for step in 0..n - 1 {
            let send = self.chunk(buf.len(), (self.rank + n - step + shift) % n);
            let recv = self.chunk(buf.len(), (self.rank + 2 * n - step - 1 + shift) % n);
            let outgoing = buf[send].to_vec();
            self.exchange(Op::ReduceScatter, &outgoing, &mut buf[recv], |o, v| *o += v)?;
        }
        Ok(())
    }

    /// Ring all-gather: this rank starts owning chunk `owned`; afterwards it has every chunk.
    fn ring_all_gather(&mut self, buf: &mut [f32], owned: usize) -> Result<(), DistError> {
        let n = self.world_size;
        for step in 0..n - 1 {
            let send = self.chunk(buf.len(), (owned + n - step) % n);
            let recv = self.chunk(buf.len(), (owned + 2 * n - step - 1) % n);
            let outgoing = buf[send].to_vec();
            self.exchange(Op::AllGather, &outgoing, &mut buf[recv], |o, v| *o = v)?;
        }
        Ok(())
    }
}

impl Communicator for TcpCommunicator {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.world_size
    }

    fn all_reduce_sum(&mut self, buf: &mut [f32]) -> Result<(), DistError> {
        if self.world_size == 1 {
            return Ok(());
        }
        self.ring_reduce_scatter(buf, 0)?;
        let owned = (self.rank + 1) % self.world_size;
        self.ring_all_gather(buf, owned)
    }

    fn broadcast(&mut self, buf: &mut [f32], root: usize) -> Result<(), DistError> {
        if root >= self.world_size {
            return Err(self.usage("broadcast", format!("root {root} outside the world")));
        }
        if self.world_size == 1 {
            return Ok(());
        }
        if self.rank != root {
            self.recv(Op::Broadcast, buf)?;
        }
        if self.next_rank() != root {
            self.send(Op::Broadcast, buf)?;
        }
        Ok(())
    }

    fn reduce_scatter_sum(&mut self, input: &[f32], out: &mut [f32]) -> Result<(), DistError> {
        let n = self.world_size;
        self.check_shards("reduce_scatter", "input", input.len(), out.len())?;
        let mut buf = input.to_vec();
        if n > 1 {
            // Shift so the reduced chunk this rank ends with is its own shard.
            self.ring_reduce_scatter(&mut buf, n - 1)?;
        }
        out.copy_from_slice(&buf[self.chunk(input.len(), self.rank)]);
        Ok(())
    }

    fn all_gather(&mut self, input: &[f32], out: &mut [f32]) -> Result<(), DistError> {
        let n = self.world_size;
        self.check_shards("all_gather", "output", out.len(), input.len())?;
        let own = self.chunk(out.len(), self.rank);
        out[own].copy_from_slice(input);
        if n > 1 {
            self.ring_all_gather(out, self.rank)?;
        }
        Ok(())
    }

    fn barrier(&mut self) -> Result<(), DistError> {
        let mut token = [0f32; 1];
        // A one-value buffer gives empty chunks to all but one rank; messages still flow
        // around the whole ring, so every rank waits for every other.
        self.all_reduce_sum(&mut token)
    }
}
