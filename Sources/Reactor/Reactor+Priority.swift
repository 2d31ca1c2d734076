/// Priority descriptors: a second epoll instance, itself watched by the main one, for the few
/// descriptors whose round trips pace the process's work — the outbound SMTP sessions, where
/// each message is one round trip to the relay (RFC 2920 lets the next message's commands ride
/// with the end of data, not its data: that waits for the 354).
///
/// Under full HTTP load one batch of the main epoll holds dozens of requests and takes
/// milliseconds; a session's reply that arrived meanwhile would wait for the next iteration,
/// so with the default 4 sessions delivery ran at 4 messages per iteration (~550/s while
/// ~5 500/s were accepted). Here, after every `priorityPollEvery` events of a batch — or
/// sooner, once `priorityPollInterval` (150 µs) has passed since the last poll — the
/// priority epoll is polled without waiting (one `epoll_wait(…, 0)`), its events handled, and
/// `afterPriorityEvents` called (the server commits the outcomes they produced, so a session
/// released by that commit writes its next message at once). When the main epoll has nothing
/// else, the priority epoll's own readiness wakes it as any descriptor does.
///
/// Why the interval: a durable send costs ~100 µs, so 4 of them held a session's reply for
/// ~400 µs, and a message takes two such waits (its reply, then its outcome's commit). With
/// the default 4 sessions, `SESSIONS=4 DURATION=15 Benchmarks/run-e2e`: every 4 events alone,
/// 0.68–0.70× of the accepted rate delivered during the load (the queue grew by 35 000 in
/// 15 s); with the 150 µs interval, 1.00× in 3 runs of 3 (queue 0), server CPU per
/// accepted-and-delivered message 157–175 µs against 154–179 (this VM's noise).
import Glibc
import CShims

extension Reactor {
    final class PriorityWaker: IOHandler {
        unowned let reactor: Reactor
        init(_ reactor: Reactor) { self.reactor = reactor }
        func onReadable() { reactor.pollPriority() }
        func onWritable() {}
    }

    /// The priority epoll, made on the first priority registration.
    func makePriorityEpoll() throws(SystemError) {
        guard priorityFD < 0 else { return }
        let fd = epoll_create1(Int32(EPOLL_CLOEXEC))
        if fd < 0 { throw SystemError(code: errno, call: "epoll_create1") }
        priorityFD = fd
        priorityEvents = .allocate(capacity: 256)
        priorityEvents.initialize(repeating: epoll_event())
        let waker = PriorityWaker(self)
        priorityWaker = waker
        try register(fd: fd, interest: .readable, handler: waker)
    }

    /// Handles whatever the priority descriptors have now, without waiting.
    func pollPriority() {
        guard priorityFD >= 0 else { return }
        // Their interest changes first (a session that now waits to write), so epoll reports
        // what they want now.
        applyInterestChanges()
        lastPriorityPoll = Instant.now()
        let n = epoll_wait(priorityFD, priorityEvents.baseAddress, Int32(priorityEvents.count), 0)
        guard n > 0 else { return }
        dispatch(priorityEvents, Int(n), pollingPriority: false)
        afterPriorityEvents?()
    }
}
