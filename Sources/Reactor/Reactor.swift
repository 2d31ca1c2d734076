/// Reactor: one thread, one epoll instance, the only owner of file descriptors.
///
/// Owns: descriptor registrations (epoll interest + the handler to call), deadlines (a timer
/// heap driving `epoll_wait`'s timeout), signals (signalfd) and the loop's named tail.
/// Refuses to know: HTTP, SMTP, TLS, SQL — handlers are `AnyObject` protocol conformers that
/// get `onReadable`/`onWritable`/`onDeadline`; what they do is theirs. (redis `ae.c`)
///
/// **Level-triggered**, on purpose: a handler may stop reading after a budget (fairness
/// between 10k connections, back-pressure when a client pipelines without reading) and the
/// kernel re-announces the rest on the next `epoll_wait`; with edge-triggering every handler
/// would have to drain to EAGAIN or keep its own "still readable" list, and a missed drain
/// is a hung connection. The price is `epoll_ctl(MOD)` to add/remove EPOLLOUT, which we pay
/// only when a write would block (a response is first written directly). Decrypted TLS
/// bytes the kernel cannot announce are handled by the `drain` tail phase, not by epoll.
///
/// Registrations carry a generation: epoll's user data is `fd | generation << 32`, so an
/// event for a descriptor that was closed (and whose number was reused) in the same batch
/// is dropped. (SwiftNIO `SelectorRegistrationID`)
///
/// One loop iteration: `epoll_wait` → I/O callbacks → due timers → the tail, in phase order
/// (`TailPhase`: drain → commit → flush → reap) → pending interest changes applied → the next
/// wait computed from the timer heap (0 when a tail handler still has work). A response that
/// depends on a database write is therefore never written before that write is committed:
/// the commit phase runs before the flush phase. (redis `beforeSleep`)
///
/// Never free what is on the stack: handlers ask for closes, the reap phase performs them.
#if canImport(Glibc)
import Glibc
#endif
import CShims
import HeapModule

/// Readiness a handler wants to hear about.
public struct Interest: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let readable = Interest(rawValue: 1)
    public static let writable = Interest(rawValue: 2)

    var epollMask: UInt32 {
        var m: UInt32 = 0
        if contains(.readable) { m |= EPOLLIN.rawValue | EPOLLRDHUP.rawValue }
        if contains(.writable) { m |= EPOLLOUT.rawValue }
        return m
    }
}

/// A descriptor's readiness callbacks. Errors and hang-ups arrive as readable + writable:
/// the next read or write reports what happened, through the one syscall wrapper.
public protocol IOHandler: AnyObject {
    func onReadable()
    func onWritable()
}

/// A timer's callback.
public protocol DeadlineHandler: AnyObject {
    func onDeadline()
}

/// Receives the signals the reactor watches (through signalfd, inside the loop).
public protocol SignalHandler: AnyObject {
    func onSignal(_ signal: Int32)
}

/// The ordered tail of every loop iteration. (STYLE habit 4)
public enum TailPhase: Int, CaseIterable, Sendable {
    /// Work the kernel cannot announce: TLS-buffered plaintext, input held back by back-pressure.
    case drain
    /// Commit this iteration's database writes in one transaction.
    case commit
    /// Write responses (directly; EPOLLOUT only for what remains).
    case flush
    /// Close what handlers asked to close.
    case reap
}

public protocol TailHandler: AnyObject {
    /// Returns true when the handler still has work for which the loop must not sleep.
    func runTail(_ phase: TailPhase) -> Bool
}

/// A descriptor's registration: the descriptor and the generation it was registered with.
public struct Registration: Hashable, Sendable {
    public let fd: Int32
    public let generation: UInt32

    var token: UInt64 { UInt64(UInt32(bitPattern: fd)) | (UInt64(generation) << 32) }
}

public final class Reactor {
    struct Slot {
        var generation: UInt32 = 0
        var handler: IOHandler?
        /// What the handler asked for.
        var interest: Interest = []
        /// What epoll currently has.
        var applied: Interest = []
        var dirty = false
        /// Watched by the priority epoll (Reactor+Priority.swift), not the main one.
        var priority = false
    }

    let epollFD: Int32
    var slots: ContiguousArray<Slot> = []
    var dirtyFDs: [Int32] = []
    var events: UnsafeMutableBufferPointer<epoll_event>
    var tailHandlers: [[TailHandler]] = Array(repeating: [], count: TailPhase.allCases.count)
    var stopped = false
    var tailBusy = false

    // Timers (Reactor+Timers.swift)
    var timerSlots: ContiguousArray<TimerSlot> = []
    var freeTimerSlots: [Int32] = []
    var timerHeap = Heap<TimerEntry>()
    var liveTimers = 0

    // Signals (Reactor+Signals.swift)
    var signalWatcher: SignalWatcher?

    // Priority registrations (Reactor+Priority.swift)
    var priorityFD: Int32 = -1
    var priorityEvents = UnsafeMutableBufferPointer<epoll_event>(start: nil, count: 0)
    var priorityRegistrations = 0
    var priorityWaker: PriorityWaker?
    /// Called after the events of priority descriptors were handled between other events (a
    /// commit of what they produced, so they can go on before the iteration ends).
    public var afterPriorityEvents: (() -> Void)?
    /// Priority descriptors are polled after every this many other events of one batch…
    public var priorityPollEvery = 4
    /// …or sooner, once this long has passed since they were last polled (events that cost
    /// ~100 µs each — durable sends — would otherwise hold a session's reply for 400 µs).
    public var priorityPollInterval: Duration = .microseconds(150)
    var lastPriorityPoll = Instant(nanoseconds: 0)

    /// The time at the start of the current iteration's callbacks. Handlers use it instead of
    /// reading the clock themselves (one clock read per iteration, not per event).
    public private(set) var now: Instant

    /// Loop iterations so far (for tests and metrics).
    public private(set) var iterations: UInt64 = 0

    public init(maxEventsPerWait: Int = 1024) throws(SystemError) {
        let fd = epoll_create1(Int32(EPOLL_CLOEXEC))
        if fd < 0 { throw SystemError(code: errno, call: "epoll_create1") }
        epollFD = fd
        events = .allocate(capacity: maxEventsPerWait)
        events.initialize(repeating: epoll_event())
        now = Instant.now()
    }

    deinit {
        events.deallocate()
        if priorityEvents.baseAddress != nil { priorityEvents.deallocate() }
        if let w = signalWatcher { Syscall.close(w.fd) }
        if priorityFD >= 0 { Syscall.close(priorityFD) }
        Syscall.close(epollFD)
    }

    // MARK: Registrations

    /// Starts watching `fd`. The reactor now owns it: close it with `close(_:)`.
    /// `priority`: its events are also handled between the events of a large batch, not only
    /// in the batch's turn (Reactor+Priority.swift) — for the few descriptors whose round trips
    /// pace the work, like the outbound SMTP sessions.
    @discardableResult
    public func register(fd: Int32, interest: Interest, handler: IOHandler, priority: Bool = false) throws(SystemError) -> Registration {
        precondition(fd >= 0, "register: negative descriptor")
        if priority { try makePriorityEpoll() }
        let index = Int(fd)
        if index >= slots.count {
            slots.append(contentsOf: repeatElement(Slot(), count: max(index + 1 - slots.count, slots.count)))
        }
        precondition(slots[index].handler == nil, "register: fd \(fd) is already registered")
        slots[index].generation &+= 1
        let reg = Registration(fd: fd, generation: slots[index].generation)
        var ev = epoll_event()
        ev.events = interest.epollMask
        ev.data.u64 = reg.token
        if epoll_ctl(priority ? priorityFD : epollFD, EPOLL_CTL_ADD, fd, &ev) != 0 {
            throw SystemError(code: errno, call: "epoll_ctl(ADD)")
        }
        slots[index].priority = priority
        if priority { priorityRegistrations += 1 }
        slots[index].handler = handler
        slots[index].interest = interest
        slots[index].applied = interest
        slots[index].dirty = false
        return reg
    }

    /// Changes what `reg` wants to hear about. Applied once, before the loop next sleeps, so a
    /// handler that toggles interest several times in one callback costs one `epoll_ctl`.
    public func setInterest(_ reg: Registration, _ interest: Interest) {
        let index = Int(reg.fd)
        guard index < slots.count, slots[index].generation == reg.generation, slots[index].handler != nil else { return }
        slots[index].interest = interest
        if !slots[index].dirty && slots[index].interest != slots[index].applied {
            slots[index].dirty = true
            dirtyFDs.append(reg.fd)
        }
    }

    public func interest(of reg: Registration) -> Interest {
        let index = Int(reg.fd)
        guard index < slots.count, slots[index].generation == reg.generation else { return [] }
        return slots[index].interest
    }

    /// Stops watching and closes the descriptor. Events for it still queued in this batch are
    /// dropped (their generation is stale).
    public func close(_ reg: Registration) {
        let index = Int(reg.fd)
        guard index < slots.count, slots[index].generation == reg.generation, slots[index].handler != nil else { return }
        var ev = epoll_event()
        _ = epoll_ctl(epoll(of: index), EPOLL_CTL_DEL, reg.fd, &ev)
        forget(index)
        Syscall.close(reg.fd)
    }

    /// Stops watching without closing: for a descriptor someone else owns (libpq's socket,
    /// which it closes itself — possibly already, so errors are ignored).
    public func unregister(_ reg: Registration) {
        let index = Int(reg.fd)
        guard index < slots.count, slots[index].generation == reg.generation, slots[index].handler != nil else { return }
        var ev = epoll_event()
        _ = epoll_ctl(epoll(of: index), EPOLL_CTL_DEL, reg.fd, &ev)
        forget(index)
    }

    /// The slot of a descriptor no longer watched: events already fetched for it are stale.
    func forget(_ index: Int) {
        if slots[index].priority { priorityRegistrations -= 1 }
        slots[index].handler = nil
        slots[index].interest = []
        slots[index].applied = []
        slots[index].priority = false
        slots[index].generation &+= 1
    }

    /// The epoll instance that watches the descriptor of `index`.
    func epoll(of index: Int) -> Int32 { slots[index].priority ? priorityFD : epollFD }

    func applyInterestChanges() {
        guard !dirtyFDs.isEmpty else { return }
        for fd in dirtyFDs {
            let index = Int(fd)
            guard slots[index].dirty else { continue }
            slots[index].dirty = false
            guard slots[index].handler != nil, slots[index].interest != slots[index].applied else { continue }
            var ev = epoll_event()
            ev.events = slots[index].interest.epollMask
            ev.data.u64 = Registration(fd: fd, generation: slots[index].generation).token
            if epoll_ctl(epoll(of: index), EPOLL_CTL_MOD, fd, &ev) == 0 {
                slots[index].applied = slots[index].interest
            } else {
                // Only EBADF/ENOENT are possible here and both mean our bookkeeping is wrong.
                preconditionFailure("epoll_ctl(MOD) fd \(fd): errno \(errno)")
            }
        }
        dirtyFDs.removeAll(keepingCapacity: true)
    }

    // MARK: Tail

    /// Adds a handler to one phase of the loop's tail (called in registration order).
    public func addTailHandler(_ handler: TailHandler, phase: TailPhase) {
        tailHandlers[phase.rawValue].append(handler)
    }

    // MARK: Loop

    /// Ends `run()` after the current iteration.
    public func stop() { stopped = true }

    public var isStopped: Bool { stopped }

    /// Runs until `stop()`.
    public func run() throws(SystemError) {
        stopped = false
        while !stopped {
            try runOnce()
        }
    }

    /// One iteration: wait → I/O callbacks → due timers → tail. `maxWait` caps the sleep
    /// (tests use it; `nil` = as long as the timers allow).
    public func runOnce(maxWait: Duration? = nil) throws(SystemError) {
        iterations &+= 1
        var timeoutMs = tailBusy ? 0 : nextTimeoutMilliseconds()
        if let cap = maxWait {
            let capMs = Int32(clamping: cap.components.seconds * 1000 + cap.components.attoseconds / 1_000_000_000_000_000)
            timeoutMs = timeoutMs < 0 ? capMs : min(timeoutMs, capMs)
        }
        let n = epoll_wait(epollFD, events.baseAddress, Int32(events.count), timeoutMs)
        if n < 0 {
            let err = errno
            if err != EINTR { throw SystemError(code: err, call: "epoll_wait") }
        }
        now = Instant.now()
        if n > 0 {
            lastPriorityPoll = now   // this wait reported the priority epoll too
            dispatch(events, Int(n), pollingPriority: true)
        }
        fireDueTimers()
        runTail()
    }

    /// The named tail: every phase in order, then the interest changes, once.
    func runTail() {
        var busy = false
        for phase in TailPhase.allCases {
            for h in tailHandlers[phase.rawValue] where h.runTail(phase) { busy = true }
        }
        applyInterestChanges()
        tailBusy = busy
    }

    /// Calls the handlers of `count` events of `events`. `pollingPriority`: a batch of the main
    /// epoll — after every `priorityPollEvery` events the priority descriptors' own are handled.
    func dispatch(_ events: UnsafeMutableBufferPointer<epoll_event>, _ count: Int, pollingPriority: Bool) {
        let hupMask = EPOLLERR.rawValue | EPOLLHUP.rawValue
        let readMask = EPOLLIN.rawValue | EPOLLRDHUP.rawValue | hupMask
        let writeMask = EPOLLOUT.rawValue | hupMask
        for i in 0..<count {
            if pollingPriority && i > 0 && priorityRegistrations > 0
                && (i % priorityPollEvery == 0 || Instant.now() - lastPriorityPoll >= priorityPollInterval) { pollPriority() }
            let ev = events[i]
            let token = ev.data.u64
            let fd = Int32(bitPattern: UInt32(truncatingIfNeeded: token))
            let generation = UInt32(truncatingIfNeeded: token >> 32)
            let index = Int(fd)
            guard index < slots.count, slots[index].generation == generation,
                  let handler = slots[index].handler else { continue }
            let mask = ev.events
            if mask & readMask != 0 && slots[index].applied.contains(.readable) || mask & hupMask != 0 {
                handler.onReadable()
            }
            // The read callback may have closed the descriptor (and a new one may hold the number).
            guard slots[index].generation == generation, slots[index].handler != nil else { continue }
            if mask & writeMask != 0 && slots[index].applied.contains(.writable) {
                handler.onWritable()
            }
        }
    }

    // MARK: Process-wide settings

    /// SIGPIPE would kill the process when a peer resets while we write; writes report EPIPE instead.
    public static func ignoreSIGPIPE() {
        signal(SIGPIPE, SIG_IGN)
    }

    /// Raises the soft RLIMIT_NOFILE to the hard limit (10k connections need 10k descriptors).
    /// Returns the new soft limit.
    @discardableResult
    public static func raiseDescriptorLimit() -> Int {
        var lim = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &lim) == 0 else { return -1 }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &lim)
            _ = getrlimit(Int32(RLIMIT_NOFILE.rawValue), &lim)
        }
        return Int(clamping: lim.rlim_cur)
    }
}
