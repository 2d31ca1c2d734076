/// MonotonicClock: the reactor's only source of time (CLOCK_MONOTONIC, nanoseconds).
/// Wall-clock time never drives a deadline: a clock step must not fire or starve timers.
#if canImport(Glibc)
import Glibc
#endif

/// Nanoseconds on the monotonic clock.
public struct Instant: Comparable, Hashable, Sendable {
    public var nanoseconds: UInt64

    public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }

    public static func now() -> Instant {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Instant(nanoseconds: UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec))
    }

    public static func < (a: Instant, b: Instant) -> Bool { a.nanoseconds < b.nanoseconds }

    public static func + (a: Instant, d: Duration) -> Instant {
        let (s, atto) = d.components
        let ns = Int64(s) * 1_000_000_000 + atto / 1_000_000_000
        return Instant(nanoseconds: ns >= 0 ? a.nanoseconds &+ UInt64(ns) : a.nanoseconds &- UInt64(-ns))
    }

    /// `a - b` as a Duration (negative when b is later).
    public static func - (a: Instant, b: Instant) -> Duration {
        .nanoseconds(Int64(bitPattern: a.nanoseconds &- b.nanoseconds))
    }
}

/// Whole seconds since the Unix epoch, for `Date:` headers and logs only (never deadlines).
public func wallClockSeconds() -> Int {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int(ts.tv_sec)
}
