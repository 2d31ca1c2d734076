/// RateLimit, TokenBucket and RollingDailyCount: the arithmetic behind a mailbox's `rate=N/s|N/m|N/h`
/// and `daily_recipients=N` (SPEC §6). Pure values: times are passed in (nanoseconds for the
/// bucket, milliseconds for the daily count), nothing here reads a clock, and every piece of state
/// is a plain integer a store can persist, so the limits hold for the mailbox as a whole across
/// processes that share the database.
///
/// Exact semantics, for a limit of `count` per `window`:
/// - `interval` = window / count, rounded *up* to a whole nanosecond, so the long-run rate never
///   exceeds `count` per window (7/s → 142 857 143 ns).
/// - `burst` = one second's worth of messages, at least 1 and at most `count`
///   (30/m → 1, 120/m → 2, 100/s → 100, 1000/h → 1).
/// - The bucket (GCRA) grants at most `burst` messages at once, and in any closed time span of
///   length L at most `burst + ⌊L / interval⌋`. A 30/m limiter driven by a saturated producer
///   grants exactly one message every 2 s from the first take on: 30 in every half-open minute,
///   31 in a closed one. With burst b, grant i and grant i+b are always at least one interval
///   apart.

/// `N/s`, `N/m` or `N/h`, N from 1 to 1 000 000.
public struct RateLimit: Sendable, Equatable, CustomStringConvertible {
    public enum Window: Sendable, Equatable {
        case second, minute, hour

        public var nanoseconds: Int64 {
            switch self {
            case .second: return 1_000_000_000
            case .minute: return 60_000_000_000
            case .hour: return 3_600_000_000_000
            }
        }

        var suffix: String {
            switch self {
            case .second: return "s"
            case .minute: return "m"
            case .hour: return "h"
            }
        }
    }

    /// The largest N of `rate=N/…`: a million a second is far beyond any relay and keeps the
    /// interval at 1 000 ns or more.
    public static let maxCount = 1_000_000

    public var count: Int
    public var window: Window

    public init?(count: Int, window: Window) {
        guard (1...RateLimit.maxCount).contains(count) else { return nil }
        self.count = count
        self.window = window
    }

    /// "30/m", "5/s", "1000/h" — nothing else: no spaces, no sign, no leading zero, no "30/min".
    public init?(parsing s: String) {
        let parts = s.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, let n = RateLimit.wholeNumber(parts[0], in: 1...RateLimit.maxCount) else { return nil }
        let w: Window
        switch parts[1] {
        case "s": w = .second
        case "m": w = .minute
        case "h": w = .hour
        default: return nil
        }
        self.init(count: n, window: w)
    }

    public var description: String { "\(count)/\(window.suffix)" }

    /// window / count, rounded up.
    public var intervalNanoseconds: Int64 {
        let c = Int64(count)
        return (window.nanoseconds + c - 1) / c
    }

    /// Tokens the bucket holds: one second's worth, at least 1.
    public var burst: Int {
        let perSecond = Int64(count) * RateLimit.Window.second.nanoseconds / window.nanoseconds
        return Int(max(1, min(perSecond, Int64(count))))
    }

    /// ASCII digits only, no leading zero (so `description` writes back what was read), in range.
    static func wholeNumber(_ s: Substring, in range: ClosedRange<Int>) -> Int? {
        let u = s.utf8
        guard let first = u.first, first != UInt8(ascii: "0"), u.count <= 18,
              u.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
              let n = Int(s), range.contains(n) else { return nil }
        return n
    }
}

/// GCRA (generic cell rate algorithm, the token bucket as one timestamp): messages never exceed
/// `burst` at once nor `count` per window over time (the exact bound is in the file header).
///
/// State is the theoretical arrival time (TAT): the instant at which the bucket would be full
/// again. A take at `now` is granted when TAT − now ≤ (burst − 1) · interval, and moves TAT to
/// max(TAT, now) + interval.
public struct TokenBucket: Sendable, Equatable {
    public var limit: RateLimit
    /// Stored state (a store can persist it). `Int64.min` = never used: a full bucket.
    public var theoreticalArrivalNanoseconds: Int64

    public init(_ limit: RateLimit) {
        self.init(limit, theoreticalArrivalNanoseconds: .min)
    }

    /// A bucket restored from its stored state.
    public init(_ limit: RateLimit, theoreticalArrivalNanoseconds: Int64) {
        self.limit = limit
        self.theoreticalArrivalNanoseconds = theoreticalArrivalNanoseconds
    }

    /// How far TAT may run ahead of now: (burst − 1) · interval.
    public var toleranceNanoseconds: Int64 { Int64(limit.burst - 1) * limit.intervalNanoseconds }

    /// Take one token at `nowNanoseconds`: nil = granted (state advanced); else the time (ns) at
    /// which one will be available (state unchanged; a take at that time is granted).
    public mutating func take(nowNanoseconds now: Int64) -> Int64? {
        let tat = max(theoreticalArrivalNanoseconds, now)
        let tolerance = toleranceNanoseconds
        // tat − now ≥ 0; saturating so a corrupt stored TAT can't trap.
        let ahead = TokenBucket.saturatingSubtract(tat, now)
        if ahead > tolerance {
            return TokenBucket.saturatingSubtract(tat, tolerance)
        }
        theoreticalArrivalNanoseconds = TokenBucket.saturatingAdd(tat, limit.intervalNanoseconds)
        return nil
    }

    static func saturatingAdd(_ a: Int64, _ b: Int64) -> Int64 {
        let (r, o) = a.addingReportingOverflow(b)
        return o ? (b > 0 ? .max : .min) : r
    }

    static func saturatingSubtract(_ a: Int64, _ b: Int64) -> Int64 {
        let (r, o) = a.subtractingReportingOverflow(b)
        return o ? (b > 0 ? .min : .max) : r
    }
}

/// Recipients sent in the last 24 hours, in one-minute buckets (rolling window; memory bounded:
/// at most 1441 buckets).
///
/// A recipient added at t is counted as if sent at the end of its minute, ⌈t / 60 000⌉ minutes:
/// it leaves the window at that minute + 24 h — exactly at t + 24 h when t falls on a whole
/// minute, at most one minute later otherwise, never earlier. So the count is never below what a
/// relay with an exact rolling 24-hour window sees (Microsoft 365: 10 000 recipients a day).
/// Recipients added "in the future" (another machine's clock ahead of ours) count at once, for
/// the same reason.
///
/// Why 1441 buckets and not 1440: between whole minutes, the window (now − 24 h, now] touches
/// 1441 minutes — the one in progress and the oldest, partly still inside. Never undercounting
/// needs both; folding the oldest into its neighbour instead would carry it forward minute after
/// minute and the count would never fall. The bound is kept by the newest bucket's clock: a bucket
/// 1441 or more minutes older than the newest is dropped (with clocks that disagree, the one ahead
/// decides what is too old; its lead is the most that can be undercounted).
public struct RollingDailyCount: Sendable, Equatable {
    public struct Bucket: Sendable, Equatable {
        /// ⌈ms / 60 000⌉ of the recipients' add times: the minute they leave 24 h after.
        public var minute: Int64
        public var count: Int

        public init(minute: Int64, count: Int) {
            self.minute = minute
            self.count = count
        }
    }

    public static let windowMilliseconds: Int64 = 86_400_000
    public static let bucketMilliseconds: Int64 = 60_000
    /// 24 h of whole minutes plus the one in progress (see above).
    public static let maxBuckets = 1441

    /// For persistence / inspection (sorted by minute, no empty bucket).
    public private(set) var buckets: [Bucket]

    public init() { buckets = [] }

    /// Restores stored buckets: sorted, same minutes merged, empty ones dropped, at most 1441
    /// (those 1441 or more minutes older than the newest are dropped).
    public init(buckets: [Bucket]) {
        var merged: [Bucket] = []
        for b in buckets.filter({ $0.count > 0 }).sorted(by: { $0.minute < $1.minute }) {
            if let last = merged.last, last.minute == b.minute {
                merged[merged.count - 1].count = RollingDailyCount.saturatingAdd(last.count, b.count)
            } else {
                merged.append(b)
            }
        }
        self.buckets = merged
        capBuckets()
    }

    /// The minute a time belongs to: ⌈ms / 60 000⌉ (Swift's `/` truncates toward zero, which is
    /// already the ceiling for negative times).
    static func minute(of ms: Int64) -> Int64 {
        ms > 0 ? (ms - 1) / bucketMilliseconds + 1 : ms / bucketMilliseconds
    }

    /// When a bucket's recipients leave the window.
    static func leaves(_ b: Bucket) -> Int64 {
        let (start, o) = b.minute.multipliedReportingOverflow(by: bucketMilliseconds)
        return o ? (b.minute > 0 ? .max : .min) : TokenBucket.saturatingAdd(start, windowMilliseconds)
    }

    static func saturatingAdd(_ a: Int, _ b: Int) -> Int {
        let (r, o) = a.addingReportingOverflow(b)
        return o ? .max : r
    }

    public mutating func add(_ n: Int, atMilliseconds t: Int64) {
        guard n > 0 else { return }
        let m = RollingDailyCount.minute(of: t)
        // Add times grow in the normal case: the bucket is the last one or a new last one.
        if let last = buckets.last, last.minute == m {
            buckets[buckets.count - 1].count = RollingDailyCount.saturatingAdd(last.count, n)
        } else if buckets.last.map({ $0.minute < m }) ?? true {
            buckets.append(Bucket(minute: m, count: n))
        } else {
            let i = buckets.firstIndex { $0.minute >= m }!
            if buckets[i].minute == m {
                buckets[i].count = RollingDailyCount.saturatingAdd(buckets[i].count, n)
            } else {
                buckets.insert(Bucket(minute: m, count: n), at: i)
            }
        }
        // Forget what has left the window as of t.
        let gone = buckets.prefix { RollingDailyCount.leaves($0) <= t }.count
        buckets.removeFirst(gone)
        capBuckets()
    }

    /// Keeps the buckets within 1441 minutes of the newest (distinct sorted minutes, so at most
    /// 1441 of them). In one clock's order nothing is dropped here that `add` would not drop.
    mutating func capBuckets() {
        guard let newest = buckets.last?.minute else { return }
        let oldestKept = newest - Int64(RollingDailyCount.maxBuckets) + 1
        let tooOld = buckets.prefix { $0.minute < oldestKept }.count
        buckets.removeFirst(tooOld)
    }

    /// Recipients counted in (now − 24 h, now].
    public func count(atMilliseconds now: Int64) -> Int {
        buckets.reduce(0) { RollingDailyCount.leaves($1) > now ? RollingDailyCount.saturatingAdd($0, $1.count) : $0 }
    }

    /// Whether `n` more fit under `limit` now; if not, the earliest time (ms) at which enough will
    /// have left the window (nil if never: n > limit). When they fit, `at` is `now`.
    public func whenRoom(for n: Int, limit: Int, atMilliseconds now: Int64) -> (fits: Bool, at: Int64?) {
        if n <= 0 { return (true, now) }
        if n > limit { return (false, nil) }
        let current = count(atMilliseconds: now)
        if current <= limit - n { return (true, now) }
        // current + n − limit recipients must leave; buckets leave in minute order.
        let need = current - (limit - n)
        var left = 0
        for b in buckets where RollingDailyCount.leaves(b) > now {
            left = RollingDailyCount.saturatingAdd(left, b.count)
            if left >= need { return (false, RollingDailyCount.leaves(b)) }
        }
        return (false, nil)   // unreachable: need ≤ current
    }
}
