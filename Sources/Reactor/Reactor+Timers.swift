/// Reactor timers: deadlines in a min-heap that drives `epoll_wait`'s timeout.
///
/// Scales to 10k+ connection timeouts: each connection owns one timer slot and re-arms it
/// on every state change (head → idle → head …). Heap entries are (deadline, slot,
/// generation); lazy deletion, no search (redis tombstoned time events, STYLE habit 2):
/// - cancelling only clears `armed`; the entry is dropped when it reaches the top;
/// - re-arming to a LATER deadline (the common case: "extend the idle timeout") only moves
///   the slot's deadline — the existing earlier entry, when it pops, re-queues itself at the
///   real deadline; no heap operation per request;
/// - re-arming EARLIER pushes a new entry with a new generation; the old one becomes stale.
/// The heap is rebuilt from live slots when stale entries outnumber live ones by far.
/// Monotonic clock only.
import HeapModule

/// A timer owned by one handler; re-armed and cancelled many times, freed once.
public struct TimerHandle: Hashable, Sendable {
    let slot: Int32
    let generation: UInt32
}

struct TimerEntry: Comparable {
    var deadline: UInt64
    var slot: Int32
    var generation: UInt32

    static func < (a: TimerEntry, b: TimerEntry) -> Bool {
        a.deadline != b.deadline ? a.deadline < b.deadline : a.slot < b.slot
    }
}

struct TimerSlot {
    /// Bumped on free (handle validity) — `handleGeneration`; and on every push (entry validity).
    var handleGeneration: UInt32 = 0
    var entryGeneration: UInt32 = 0
    var handler: DeadlineHandler?
    var deadline: UInt64 = 0
    var armed = false
    /// Deadline of this slot's one live heap entry, if any.
    var liveEntryDeadline: UInt64?
}

extension Reactor {
    /// Allocates a timer for `handler` (not armed).
    public func makeTimer(_ handler: DeadlineHandler) -> TimerHandle {
        let slot: Int32
        if let s = freeTimerSlots.popLast() {
            slot = s
        } else {
            slot = Int32(timerSlots.count)
            timerSlots.append(TimerSlot())
        }
        timerSlots[Int(slot)].handler = handler
        return TimerHandle(slot: slot, generation: timerSlots[Int(slot)].handleGeneration)
    }

    /// Arms (or re-arms) the timer to fire once at `deadline`.
    public func arm(_ timer: TimerHandle, at deadline: Instant) {
        let i = Int(timer.slot)
        guard timerSlots[i].handleGeneration == timer.generation else { return }
        if !timerSlots[i].armed { liveTimers += 1 }
        timerSlots[i].armed = true
        timerSlots[i].deadline = deadline.nanoseconds
        if let live = timerSlots[i].liveEntryDeadline, live <= deadline.nanoseconds {
            return   // the earlier entry will re-queue itself at the real deadline
        }
        push(slot: i, deadline: deadline.nanoseconds)
    }

    /// Arms the timer to fire after `delay` from the current iteration's time.
    public func arm(_ timer: TimerHandle, after delay: Duration) {
        arm(timer, at: now + delay)
    }

    /// Disarms the timer (it can be armed again).
    public func cancel(_ timer: TimerHandle) {
        let i = Int(timer.slot)
        guard timerSlots[i].handleGeneration == timer.generation, timerSlots[i].armed else { return }
        timerSlots[i].armed = false
        liveTimers -= 1
    }

    public func isArmed(_ timer: TimerHandle) -> Bool {
        let i = Int(timer.slot)
        return timerSlots[i].handleGeneration == timer.generation && timerSlots[i].armed
    }

    /// Releases the timer; the handle is invalid afterwards.
    public func free(_ timer: TimerHandle) {
        let i = Int(timer.slot)
        guard timerSlots[i].handleGeneration == timer.generation else { return }
        cancel(timer)
        timerSlots[i].handleGeneration &+= 1
        timerSlots[i].entryGeneration &+= 1   // any heap entry of the old owner is stale
        timerSlots[i].liveEntryDeadline = nil
        timerSlots[i].handler = nil
        freeTimerSlots.append(timer.slot)
    }

    /// Number of armed timers.
    public var armedTimerCount: Int { liveTimers }

    func push(slot i: Int, deadline: UInt64) {
        timerSlots[i].entryGeneration &+= 1
        timerSlots[i].liveEntryDeadline = deadline
        timerHeap.insert(TimerEntry(deadline: deadline, slot: Int32(i), generation: timerSlots[i].entryGeneration))
        if timerHeap.count > 4096 && timerHeap.count > 4 * liveTimers {
            compactTimerHeap()
        }
    }

    func compactTimerHeap() {
        var live: [TimerEntry] = []
        live.reserveCapacity(liveTimers)
        for i in timerSlots.indices {
            timerSlots[i].liveEntryDeadline = nil
            guard timerSlots[i].armed else { continue }
            timerSlots[i].entryGeneration &+= 1
            timerSlots[i].liveEntryDeadline = timerSlots[i].deadline
            live.append(TimerEntry(deadline: timerSlots[i].deadline, slot: Int32(i), generation: timerSlots[i].entryGeneration))
        }
        timerHeap = Heap(live)
    }

    /// Drops stale entries from the top of the heap; returns the next live deadline.
    func nextLiveDeadline() -> UInt64? {
        while let top = timerHeap.min {
            let i = Int(top.slot)
            if timerSlots[i].entryGeneration == top.generation && timerSlots[i].armed {
                return top.deadline
            }
            _ = timerHeap.removeMin()
            if timerSlots[i].entryGeneration == top.generation { timerSlots[i].liveEntryDeadline = nil }
        }
        return nil
    }

    /// epoll_wait timeout: -1 (no timers) or milliseconds until the earliest, rounded up so a
    /// wake-up is never early (an early wake-up would spin).
    func nextTimeoutMilliseconds() -> Int32 {
        guard let deadline = nextLiveDeadline() else { return -1 }
        let current = Instant.now().nanoseconds
        if deadline <= current { return 0 }
        let ms = (deadline - current + 999_999) / 1_000_000
        return Int32(clamping: ms)
    }

    func fireDueTimers() {
        let current = now.nanoseconds
        while let top = timerHeap.min, top.deadline <= current {
            _ = timerHeap.removeMin()
            let i = Int(top.slot)
            guard timerSlots[i].entryGeneration == top.generation else { continue }
            timerSlots[i].liveEntryDeadline = nil
            guard timerSlots[i].armed else { continue }
            if timerSlots[i].deadline > top.deadline {
                push(slot: i, deadline: timerSlots[i].deadline)   // extended meanwhile
                continue
            }
            timerSlots[i].armed = false
            liveTimers -= 1
            timerSlots[i].handler?.onDeadline()
        }
    }
}
