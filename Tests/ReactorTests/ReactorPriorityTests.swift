/// Priority registrations (Reactor+Priority.swift) over real socketpairs: a priority
/// descriptor's events are handled between the events of a long batch — after every
/// `priorityPollEvery` of them — followed by `afterPriorityEvents`; alone, it wakes the loop
/// like any descriptor; its interest changes and close work as for the others.
#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import Reactor

@Suite struct ReactorPriorityTests {
    final class Ordered: IOHandler {
        let name: String
        let log: OrderLog
        let fd: Int32
        init(_ name: String, _ log: OrderLog, fd: Int32) { self.name = name; self.log = log; self.fd = fd }
        func onReadable() {
            var byte: UInt8 = 0
            _ = read(fd, &byte, 1)   // consumed: each is readable once
            log.names.append(name)
        }
        func onWritable() { log.names.append(name + " writable") }
    }
    final class OrderLog { var names: [String] = [] }

    /// One batch: a first handler (readable first, so first in epoll's ready list) that sends
    /// the priority descriptor `p` a byte through its peer, then `count` ordinary descriptors
    /// made by `ordinary(i, fd)`, all readable at once. The peers go to `peers` (closed by the
    /// caller).
    func longBatch(_ reactor: Reactor, count: Int, peers: inout [Int32],
                   ordinary: (Int, Int32) -> IOHandler) throws -> (regs: [Registration], p: Int32, q: Int32) {
        let (p, q) = makeSocketPair()
        peers.append(q)
        var sent = false
        let (c, d) = makeSocketPair()
        peers.append(d)
        var regs = [try reactor.register(fd: c, interest: .readable, handler: Trigger { if !sent { sent = true; _ = write(q, "p", 1) } })]
        _ = write(d, "x", 1)
        for i in 0..<count {
            let (a, b) = makeSocketPair()
            peers.append(b)
            regs.append(try reactor.register(fd: a, interest: .readable, handler: ordinary(i, a)))
            _ = write(b, "x", 1)
        }
        return (regs, p, q)
    }

    /// Expensive events (a durable send costs ~100 µs): the priority descriptors are polled
    /// once `priorityPollInterval` has passed, however few events that took.
    @Test func aBatchOfExpensiveEventsPollsByTime() throws {
        let reactor = try Reactor()
        reactor.priorityPollEvery = 1000   // the time alone
        reactor.priorityPollInterval = .milliseconds(1)
        let log = OrderLog()
        var peers: [Int32] = []
        defer { for p in peers { close(p) } }
        // Each ordinary event costs 2 ms of work (the clock read until it has moved that far:
        // CPU, no sleep).
        let (regs, p, _) = try longBatch(reactor, count: 20, peers: &peers) { i, a in
            Trigger {
                var byte: UInt8 = 0
                _ = read(a, &byte, 1)
                log.names.append("n\(i)")
                let start = Instant.now()
                while Instant.now() - start < .milliseconds(2) {}
            }
        }
        let preg = try reactor.register(fd: p, interest: .readable, handler: Ordered("P", log, fd: p), priority: true)
        try reactor.runOnce(maxWait: .milliseconds(200))
        #expect(log.names.filter { $0.hasPrefix("n") }.count == 20, "\(log.names)")
        let at = try #require(log.names.firstIndex(of: "P"), "not served in the batch: \(log.names)")
        #expect(at <= 2, "within one expensive event of the interval, not after 1 000 events: \(log.names)")
        for r in regs { reactor.close(r) }
        reactor.close(preg)
    }

    @Test func aPriorityDescriptorIsServedInsideALongBatch() throws {
        let reactor = try Reactor()
        reactor.priorityPollEvery = 8
        reactor.priorityPollInterval = .seconds(3600)   // the count alone
        let log = OrderLog()
        var peers: [Int32] = []
        defer { for p in peers { close(p) } }
        // The priority peer writes while the batch of 40 runs.
        let (regs, p, q) = try longBatch(reactor, count: 40, peers: &peers) { i, a in Ordered("n\(i)", log, fd: a) }
        let preg = try reactor.register(fd: p, interest: .readable, handler: Ordered("P", log, fd: p), priority: true)
        var after = 0
        reactor.afterPriorityEvents = { after += 1 }
        try reactor.runOnce(maxWait: .milliseconds(200))
        let ordinary = log.names.filter { $0.hasPrefix("n") }
        #expect(ordinary.count == 40, "\(log.names)")
        let at = try #require(log.names.firstIndex(of: "P"), "the priority descriptor was not served in the batch: \(log.names)")
        #expect(at < log.names.count - 1, "served inside the batch, not after it: \(log.names)")
        #expect(at <= 8, "within priorityPollEvery events of becoming readable: \(log.names)")
        #expect(after == 1)
        #expect(log.names.filter { $0 == "P" }.count == 1)

        // Alone, it wakes the loop (the priority epoll is watched by the main one).
        log.names.removeAll()
        _ = write(q, "p", 1)
        try reactor.runOnce(maxWait: .milliseconds(1000))
        #expect(log.names == ["P"])
        #expect(after == 2)

        // Interest changes apply to the priority epoll: writable, then nothing.
        log.names.removeAll()
        reactor.setInterest(preg, .writable)
        try reactor.runOnce(maxWait: .zero)   // applied at this iteration's end, as for any descriptor
        try reactor.runOnce(maxWait: .milliseconds(1000))
        #expect(log.names == ["P writable"])
        reactor.setInterest(preg, [])
        try reactor.runOnce(maxWait: .zero)
        log.names.removeAll()
        _ = write(q, "p", 1)
        try reactor.runOnce(maxWait: .milliseconds(50))
        #expect(log.names.isEmpty)

        // Closed: nothing more, and a new registration of the same number is an ordinary one.
        reactor.close(preg)
        #expect(reactor.priorityRegistrations == 0)
        for r in regs { reactor.close(r) }
    }

    final class Trigger: IOHandler {
        let action: () -> Void
        init(_ action: @escaping () -> Void) { self.action = action }
        func onReadable() { action() }
        func onWritable() {}
    }
}
