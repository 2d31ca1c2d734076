/// Reactor tests over real descriptors (pipes, socketpairs, UDP on 127.0.0.1, signalfd):
/// registrations and generations, level-triggered readiness, deferred interest changes,
/// the timer heap (order, cancel, extend, re-arm earlier, 10k timers), tail phase order,
/// signals delivered inside the loop.
#if canImport(Glibc)
import Glibc
#endif
import CShims
import Testing
@testable import Reactor

final class RecordingHandler: IOHandler {
    var reads = 0
    var writes = 0
    var onRead: (() -> Void)?
    func onReadable() { reads += 1; onRead?() }
    func onWritable() { writes += 1 }
}

final class RecordingTimer: DeadlineHandler {
    let name: Int
    let log: Log
    init(_ name: Int, _ log: Log) { self.name = name; self.log = log }
    func onDeadline() { log.fired.append(name) }
}

final class Log { var fired: [Int] = [] }

func makeSocketPair() -> (Int32, Int32) {
    var fds: [Int32] = [0, 0]
    let rc = socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0, &fds)
    precondition(rc == 0)
    return (fds[0], fds[1])
}

@Suite struct ReactorTests {
    @Test func readableIsDeliveredAndLevelTriggered() throws {
        let reactor = try Reactor()
        let (a, b) = makeSocketPair()
        defer { close(b) }
        let h = RecordingHandler()
        let reg = try reactor.register(fd: a, interest: .readable, handler: h)
        try reactor.runOnce(maxWait: .zero)
        #expect(h.reads == 0)
        _ = write(b, "x", 1)
        try reactor.runOnce(maxWait: .milliseconds(100))
        #expect(h.reads == 1)
        // Not consumed: level-triggered epoll announces it again.
        try reactor.runOnce(maxWait: .milliseconds(100))
        #expect(h.reads == 2)
        reactor.close(reg)
    }

    @Test func interestChangesApplyBeforeSleeping() throws {
        let reactor = try Reactor()
        let (a, b) = makeSocketPair()
        defer { close(b) }
        let h = RecordingHandler()
        let reg = try reactor.register(fd: a, interest: [], handler: h)
        try reactor.runOnce(maxWait: .zero)
        #expect(h.writes == 0)
        reactor.setInterest(reg, .writable)
        reactor.setInterest(reg, [])
        reactor.setInterest(reg, .writable)
        #expect(reactor.dirtyFDs.count == 1)
        try reactor.runOnce(maxWait: .zero)   // applied in this iteration's tail
        try reactor.runOnce(maxWait: .milliseconds(100))
        #expect(h.writes == 1)
        reactor.close(reg)
    }

    @Test func staleGenerationEventsAreDropped() throws {
        let reactor = try Reactor()
        let (a, b) = makeSocketPair()
        let (c, d) = makeSocketPair()
        defer { close(b); close(d) }
        // Handler for `a` closes `c`'s registration when it runs; `c` is readable in the same batch.
        let hc = RecordingHandler()
        let regC = try reactor.register(fd: c, interest: .readable, handler: hc)
        let ha = RecordingHandler()
        ha.onRead = { reactor.close(regC) }
        let regA = try reactor.register(fd: a, interest: .readable, handler: ha)
        _ = write(b, "x", 1)
        _ = write(d, "y", 1)
        try reactor.runOnce(maxWait: .milliseconds(100))
        #expect(ha.reads == 1)
        // Either c ran before a closed it (1) or its event was dropped (0); never after close.
        #expect(hc.reads <= 1)
        let before = hc.reads
        try reactor.runOnce(maxWait: .milliseconds(20))
        #expect(hc.reads == before)
        #expect(regC.generation == 1)
        reactor.close(regA)
    }

    @Test func reusedDescriptorGetsNewGeneration() throws {
        let reactor = try Reactor()
        let (a, b) = makeSocketPair()
        defer { close(b) }
        let reg1 = try reactor.register(fd: a, interest: .readable, handler: RecordingHandler())
        reactor.close(reg1)
        let (a2, b2) = makeSocketPair()
        defer { close(b2) }
        let reg2 = try reactor.register(fd: a2, interest: .readable, handler: RecordingHandler())
        if a2 == a { #expect(reg2.generation != reg1.generation) }
        // Using the old registration is a no-op, not a crash.
        reactor.setInterest(reg1, .writable)
        reactor.close(reg1)
        #expect(reactor.interest(of: reg2) == .readable)
        reactor.close(reg2)
    }

    @Test func timersFireInDeadlineOrder() throws {
        let reactor = try Reactor()
        let log = Log()
        let t3 = reactor.makeTimer(RecordingTimer(3, log))
        let t1 = reactor.makeTimer(RecordingTimer(1, log))
        let t2 = reactor.makeTimer(RecordingTimer(2, log))
        let base = reactor.now
        reactor.arm(t3, at: base + .milliseconds(30))
        reactor.arm(t1, at: base + .milliseconds(10))
        reactor.arm(t2, at: base + .milliseconds(20))
        while log.fired.count < 3 { try reactor.runOnce(maxWait: .seconds(1)) }
        #expect(log.fired == [1, 2, 3])
        #expect(reactor.armedTimerCount == 0)
    }

    @Test func cancelledTimerDoesNotFire() throws {
        let reactor = try Reactor()
        let log = Log()
        let t1 = reactor.makeTimer(RecordingTimer(1, log))
        let t2 = reactor.makeTimer(RecordingTimer(2, log))
        reactor.arm(t1, after: .milliseconds(5))
        reactor.arm(t2, after: .milliseconds(15))
        reactor.cancel(t1)
        while log.fired.isEmpty { try reactor.runOnce(maxWait: .seconds(1)) }
        #expect(log.fired == [2])
    }

    @Test func extendingATimerDefersIt() throws {
        let reactor = try Reactor()
        let log = Log()
        let t1 = reactor.makeTimer(RecordingTimer(1, log))
        let t2 = reactor.makeTimer(RecordingTimer(2, log))
        let base = reactor.now
        reactor.arm(t1, at: base + .milliseconds(5))
        reactor.arm(t2, at: base + .milliseconds(20))
        reactor.arm(t1, at: base + .milliseconds(40))   // extended: no new heap entry
        #expect(reactor.timerHeap.count == 2)
        while log.fired.count < 2 { try reactor.runOnce(maxWait: .seconds(1)) }
        #expect(log.fired == [2, 1])
        #expect(Instant.now() >= base + .milliseconds(40))
    }

    @Test func rearmingEarlierFiresOnceAtTheEarlierDeadline() throws {
        let reactor = try Reactor()
        let log = Log()
        let t1 = reactor.makeTimer(RecordingTimer(1, log))
        let marker = reactor.makeTimer(RecordingTimer(2, log))
        let base = reactor.now
        reactor.arm(t1, at: base + .milliseconds(200))
        reactor.arm(marker, at: base + .milliseconds(100))
        reactor.arm(t1, at: base + .milliseconds(5))
        while log.fired.count < 2 { try reactor.runOnce(maxWait: .seconds(1)) }
        #expect(log.fired == [1, 2])
        // The stale 200 ms entry must not fire it again.
        let deadline = base + .milliseconds(260)
        while Instant.now() < deadline { try reactor.runOnce(maxWait: .milliseconds(30)) }
        #expect(log.fired == [1, 2])
    }

    @Test func freedTimerSlotIsReusedWithoutGhostFires() throws {
        let reactor = try Reactor()
        let log = Log()
        let t1 = reactor.makeTimer(RecordingTimer(1, log))
        reactor.arm(t1, after: .milliseconds(5))
        reactor.free(t1)
        let t2 = reactor.makeTimer(RecordingTimer(2, log))
        #expect(t2.slot == t1.slot)
        reactor.arm(t2, after: .milliseconds(30))
        reactor.arm(t1, after: .milliseconds(1))   // stale handle: ignored
        while log.fired.isEmpty { try reactor.runOnce(maxWait: .seconds(1)) }
        #expect(log.fired == [2])
    }

    @Test func tenThousandTimersStayOrderedAndCompact() throws {
        let reactor = try Reactor()
        let log = Log()
        var handles: [TimerHandle] = []
        let base = reactor.now
        for i in 0..<10_000 {
            let t = reactor.makeTimer(RecordingTimer(i, log))
            handles.append(t)
            // Arm late, then earlier several times: stale entries pile up and get compacted.
            reactor.arm(t, at: base + .seconds(100))
            reactor.arm(t, at: base + .milliseconds(Int64(50 + (i * 7919) % 50)))
        }
        #expect(reactor.armedTimerCount == 10_000)
        #expect(reactor.timerHeap.count <= 4 * 10_000 + 4096)
        while log.fired.count < 10_000 { try reactor.runOnce(maxWait: .seconds(1)) }
        let deadlines = log.fired.map { 50 + ($0 * 7919) % 50 }
        #expect(deadlines == deadlines.sorted())
    }

    @Test func tailPhasesRunInOrder() throws {
        final class Phase: TailHandler {
            var seen: [TailPhase] = []
            func runTail(_ phase: TailPhase) -> Bool { seen.append(phase); return false }
        }
        let reactor = try Reactor()
        let p = Phase()
        reactor.addTailHandler(p, phase: .reap)
        reactor.addTailHandler(p, phase: .commit)
        reactor.addTailHandler(p, phase: .flush)
        reactor.addTailHandler(p, phase: .drain)
        try reactor.runOnce(maxWait: .zero)
        #expect(p.seen == [.drain, .commit, .flush, .reap])
    }

    @Test func busyTailMeansNoSleep() throws {
        final class Busy: TailHandler {
            var remaining = 3
            func runTail(_ phase: TailPhase) -> Bool { remaining -= 1; return remaining > 0 }
        }
        let reactor = try Reactor()
        let b = Busy()
        reactor.addTailHandler(b, phase: .drain)
        try reactor.runOnce(maxWait: .zero)
        #expect(reactor.tailBusy)                       // next wait will be 0
        #expect(reactor.nextTimeoutMilliseconds() == -1) // although no timer is armed
        try reactor.runOnce(maxWait: .seconds(30))       // returns at once: the tail is busy
        #expect(reactor.tailBusy)
        try reactor.runOnce(maxWait: .seconds(30))
        #expect(!reactor.tailBusy)
        #expect(b.remaining == 0)
    }

    @Test func udpDatagramsAreHandled() throws {
        let reactor = try Reactor()
        let server = try Socket.udp(family: AF_INET)
        try Socket.bind(server, to: SocketAddress(ip: "127.0.0.1", port: 0)!)
        let serverAddress = try Socket.localAddress(server)
        let client = try Socket.udp(family: AF_INET, connectedTo: serverAddress)
        final class Echo: IOHandler {
            let fd: Int32
            var got: [UInt8] = []
            init(_ fd: Int32) { self.fd = fd }
            func onReadable() {
                var buf = [UInt8](repeating: 0, count: 512)
                while case .done(let (n, from))? = buf.withUnsafeMutableBytes({ try? Socket.receiveFrom(fd, into: $0) }) {
                    got = Array(buf[0..<n])
                    _ = got.withUnsafeBytes { try? Socket.sendTo(fd, $0, to: from!) }
                }
            }
            func onWritable() {}
        }
        let echo = Echo(server)
        let regS = try reactor.register(fd: server, interest: .readable, handler: echo)
        let clientHandler = RecordingHandler()
        let regC = try reactor.register(fd: client, interest: .readable, handler: clientHandler)
        let payload: [UInt8] = Array("dns?".utf8)
        _ = try payload.withUnsafeBytes { try Syscall.send(client, $0) }
        for _ in 0..<50 where clientHandler.reads == 0 { try reactor.runOnce(maxWait: .milliseconds(100)) }
        #expect(echo.got == payload)
        var buf = [UInt8](repeating: 0, count: 64)
        let r = try buf.withUnsafeMutableBytes { try Syscall.read(client, into: $0) }
        #expect(r == .done(4))
        reactor.close(regS)
        reactor.close(regC)
    }

    @Test func signalsArriveInsideTheLoop() throws {
        final class Sig: SignalHandler {
            var got: [Int32] = []
            func onSignal(_ signal: Int32) { got.append(signal) }
        }
        let reactor = try Reactor()
        let s = Sig()
        try reactor.watchSignals([SIGUSR1], handler: s)
        // raise() targets this thread, which has SIGUSR1 blocked now, so it stays pending
        // and is read from the signalfd.
        raise(SIGUSR1)
        for _ in 0..<50 where s.got.isEmpty { try reactor.runOnce(maxWait: .milliseconds(100)) }
        #expect(s.got == [SIGUSR1])
    }

    @Test func listenerAcceptsNonBlockingCloexecSockets() throws {
        let (lfd, bound) = try Socket.listenTCP(try SocketAddress(parsing: "127.0.0.1:0"))
        defer { close(lfd) }
        #expect(bound.port != 0)
        let (cfd, _) = try Socket.connectTCP(bound)
        defer { close(cfd) }
        var accepted: Int32 = -1
        for _ in 0..<100 {
            if case .done(let fd) = try Syscall.accept(lfd) { accepted = fd; break }
            usleep(1000)
        }
        #expect(accepted >= 0)
        #expect(fcntl(accepted, F_GETFL) & O_NONBLOCK != 0)
        #expect(fcntl(accepted, F_GETFD) & FD_CLOEXEC != 0)
        close(accepted)
        #expect(try Syscall.accept(lfd) == .wouldBlock)
    }

    @Test(arguments: [
        ("127.0.0.1:8443", "127.0.0.1:8443"),
        (":0", "127.0.0.1:0"),
        ("localhost:25", "127.0.0.1:25"),
        ("[::1]:8080", "[::1]:8080"),
        ("0.0.0.0:1", "0.0.0.0:1"),
    ])
    func addressesParse(input: String, expected: String) throws {
        #expect(try SocketAddress(parsing: input).description == expected)
    }

    @Test(arguments: ["127.0.0.1", "127.0.0.1:99999", "::1:80", "example.com:80", "[::1]80", "1.2.3:4", "127.0.0.1:-1", ""])
    func badAddressesAreRejected(input: String) {
        #expect(throws: SocketAddress.ParseError.self) { try SocketAddress(parsing: input) }
    }
}
