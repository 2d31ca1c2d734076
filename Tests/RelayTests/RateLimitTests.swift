/// RateLimit, TokenBucket and RollingDailyCount: parsing tables, a saturated producer on a
/// simulated clock, and the edges of the rolling 24-hour window.
import Testing
@testable import Relay

let second: Int64 = 1_000_000_000
let minuteMs: Int64 = 60_000
let dayMs: Int64 = 86_400_000

@Suite struct RateLimitParsingTests {
    @Test(arguments: [
        ("30/m", 30, RateLimit.Window.minute),
        ("5/s", 5, .second),
        ("1000/h", 1000, .hour),
        ("1/s", 1, .second),
        ("1/h", 1, .hour),
        ("1000000/s", 1_000_000, .second),
        ("1000000/h", 1_000_000, .hour),
        ("999999/m", 999_999, .minute),
        ("10/m", 10, .minute),
    ])
    func valid(text: String, count: Int, window: RateLimit.Window) throws {
        let r = try #require(RateLimit(parsing: text))
        #expect(r.count == count)
        #expect(r.window == window)
        #expect(r.description == text)
    }

    @Test(arguments: [
        "", "30", "/m", "30/", "/", "30/min", "30/M", "30/S", "30/d", "30/sec", "30 /m", " 30/m", "30/m ", "30/ m",
        "0/m", "-1/s", "+5/s", "030/m", "00/s", "1000001/s", "99999999999999999999/s", "9223372036854775808/s",
        "30/m/s", "30//m", "3.5/s", "1e3/s", "0x10/s", "30/m\n", "٣/s", "３０/m", "30\\m", "30:m", "m/30",
    ])
    func invalid(text: String) {
        #expect(RateLimit(parsing: text) == nil)
    }

    @Test(arguments: [
        // limit, interval (ns, rounded up), burst (one second's worth, 1…count)
        ("30/m", 2 * second, 1),
        ("100/s", 10_000_000, 100),
        ("7/s", 142_857_143, 7),
        ("120/m", 500_000_000, 2),
        ("90/m", 666_666_667, 1),
        ("1000/h", 3_600_000_000, 1),
        ("7200/h", 500_000_000, 2),
        ("1/h", 3_600 * second, 1),
        ("1/s", second, 1),
        ("1000000/s", 1_000, 1_000_000),
        ("1000000/h", 3_600_000, 277),
    ])
    func intervalAndBurst(text: String, interval: Int64, burst: Int) throws {
        let r = try #require(RateLimit(parsing: text))
        #expect(r.intervalNanoseconds == interval)
        #expect(r.burst == burst)
        // Rounded up: count intervals never fit in less than the window.
        #expect(r.intervalNanoseconds * Int64(r.count) >= r.window.nanoseconds)
    }

    @Test func countOutOfRangeIsRefused() {
        #expect(RateLimit(count: 0, window: .second) == nil)
        #expect(RateLimit(count: 1_000_001, window: .second) == nil)
        #expect(RateLimit(count: 1, window: .hour) != nil)
    }
}

/// Drives a bucket with a producer that always has a message waiting: it takes at `now`, and on
/// a refusal sleeps exactly until the returned time. Returns the grant times.
func saturate(_ bucket: inout TokenBucket, from start: Int64, until end: Int64) -> [Int64] {
    var grants: [Int64] = []
    var now = start
    while now < end {
        if let next = bucket.take(nowNanoseconds: now) {
            #expect(next > now, "a refusal must name a later time")
            now = next
        } else {
            grants.append(now)
        }
    }
    return grants
}

@Suite struct TokenBucketTests {
    /// An arbitrary wall-clock start (2023-11-14 in ns since the epoch) so nothing depends on 0.
    let t0: Int64 = 1_700_000_000 * 1_000_000_000

    @Test func thirtyAMinuteGrantsOneEveryTwoSecondsToASaturatedProducer() throws {
        var b = TokenBucket(try #require(RateLimit(parsing: "30/m")))
        let grants = saturate(&b, from: t0, until: t0 + 180 * second)
        #expect(grants.count == 90)
        #expect(grants.first == t0)
        // No burst at the start beyond `burst` (1): exactly one every 2 s.
        for (a, b) in zip(grants, grants.dropFirst()) { #expect(b - a == 2 * second) }
        // Per simulated minute: 30.
        for m in 0..<3 {
            let lo = t0 + Int64(m) * 60 * second
            #expect(grants.filter { $0 >= lo && $0 < lo + 60 * second }.count == 30)
        }
        // Any 60 s window, wherever it starts: 30 or 31 (31 only when closed at both grant ends).
        var start = t0
        while start + 60 * second <= t0 + 180 * second {
            let closed = grants.filter { $0 >= start && $0 <= start + 60 * second }.count
            let halfOpen = grants.filter { $0 >= start && $0 < start + 60 * second }.count
            #expect(closed == 30 || closed == 31)
            #expect(halfOpen == 30)
            start += 250_000_000
        }
    }

    @Test func aPollingProducerNeverGetsTwoGrantsCloserThanTheInterval() throws {
        let limit = try #require(RateLimit(parsing: "30/m"))
        var b = TokenBucket(limit)
        var grants: [Int64] = []
        var now = t0
        // Polls every 0.3 s, whatever the bucket says.
        while now < t0 + 180 * second {
            if b.take(nowNanoseconds: now) == nil { grants.append(now) }
            now += 300_000_000
        }
        for (a, b) in zip(grants, grants.dropFirst()) { #expect(b - a >= limit.intervalNanoseconds) }
        // Polls at 0, 0.3, …: a grant at k·0.3 s, the next at the first poll ≥ 2 s later, 7 polls on.
        #expect(grants.count == 86)
    }

    @Test func aHundredASecondBurstsAHundredThenOneEveryTenMilliseconds() throws {
        let limit = try #require(RateLimit(parsing: "100/s"))
        var b = TokenBucket(limit)
        for _ in 0..<100 { #expect(b.take(nowNanoseconds: t0) == nil) }
        // The 101st at the same instant waits one interval.
        #expect(b.take(nowNanoseconds: t0) == t0 + 10_000_000)

        var fresh = TokenBucket(limit)
        let grants = saturate(&fresh, from: t0, until: t0 + 3 * second)
        #expect(grants.prefix(100).allSatisfy { $0 == t0 })
        #expect(grants.count == 100 + 299)   // the burst, then t0 + 10 ms … t0 + 2.99 s
        for (a, b) in zip(grants.dropFirst(100), grants.dropFirst(101)) { #expect(b - a == 10_000_000) }
        // Never more than `burst` within less than one interval: grant i and i+burst are ≥ 1 interval apart.
        for i in 0..<(grants.count - limit.burst) {
            #expect(grants[i + limit.burst] - grants[i] >= limit.intervalNanoseconds)
        }
        // In any closed 1 s span: at most burst + ⌊1 s / interval⌋ = 200.
        for i in grants.indices {
            #expect(grants[i...].prefix { $0 <= grants[i] + second }.count <= 200)
        }
        // After the burst the long-run rate is the limit: 100 in each later second.
        #expect(grants.filter { $0 >= t0 + second && $0 < t0 + 2 * second }.count == 100)
    }

    @Test func anIdleBucketRefillsToBurstAndNoMore() throws {
        var b = TokenBucket(try #require(RateLimit(parsing: "100/s")))
        _ = saturate(&b, from: t0, until: t0 + second)
        let later = t0 + 60 * second
        for _ in 0..<100 { #expect(b.take(nowNanoseconds: later) == nil) }
        #expect(b.take(nowNanoseconds: later) == later + 10_000_000)
    }

    @Test func aRefusalLeavesTheStateAloneAndItsTimeIsGranted() throws {
        var b = TokenBucket(try #require(RateLimit(parsing: "30/m")))
        #expect(b.take(nowNanoseconds: t0) == nil)
        let state = b
        let refused = b.take(nowNanoseconds: t0 + second)
        let at = try #require(refused)
        #expect(at == t0 + 2 * second)
        #expect(b == state)
        #expect(b.take(nowNanoseconds: at - 1) == at)
        #expect(b.take(nowNanoseconds: at) == nil)
    }

    @Test func theStoredTimestampIsTheWholeState() throws {
        let limit = try #require(RateLimit(parsing: "5/s"))
        var a = TokenBucket(limit)
        for i in 0..<7 { _ = a.take(nowNanoseconds: t0 + Int64(i) * 1_000_000) }
        // Persisted and restored elsewhere (another process), the bucket answers the same.
        var b = TokenBucket(limit, theoreticalArrivalNanoseconds: a.theoreticalArrivalNanoseconds)
        #expect(a == b)
        for i in 0..<50 {
            let now = t0 + Int64(i) * 37_000_000
            #expect(a.take(nowNanoseconds: now) == b.take(nowNanoseconds: now))
        }
    }

    @Test func aNewBucketIsFullAtAnyTime() throws {
        let limit = try #require(RateLimit(parsing: "1/h"))
        for now in [Int64.min + 1, -5 * second, 0, t0, Int64.max - 3_600 * second] {
            var b = TokenBucket(limit)
            #expect(b.theoreticalArrivalNanoseconds == .min)
            #expect(b.take(nowNanoseconds: now) == nil)
            #expect(b.take(nowNanoseconds: now) == now + 3_600 * second)
        }
    }

    @Test func aCorruptStoredTimestampDoesNotTrap() throws {
        let limit = try #require(RateLimit(parsing: "100/s"))
        var b = TokenBucket(limit, theoreticalArrivalNanoseconds: .max)
        #expect(b.take(nowNanoseconds: .min) != nil)
        var c = TokenBucket(limit, theoreticalArrivalNanoseconds: .max - 1)
        #expect(c.take(nowNanoseconds: .max - 1) == nil)
        #expect(c.theoreticalArrivalNanoseconds == .max)
    }
}

@Suite struct RollingDailyCountTests {
    /// A whole minute, well away from 0.
    let t: Int64 = 28_333_333 * 60_000

    @Test func aRecipientAddedOnAWholeMinuteLeavesExactly24HoursLater() {
        var d = RollingDailyCount()
        d.add(1, atMilliseconds: t)
        #expect(d.count(atMilliseconds: t) == 1)
        #expect(d.count(atMilliseconds: t + dayMs - 1) == 1)
        #expect(d.count(atMilliseconds: t + dayMs) == 0)
    }

    @Test func betweenWholeMinutesItLeavesAtTheNextMinuteAfter24HoursNeverEarlier() {
        var d = RollingDailyCount()
        d.add(3, atMilliseconds: t + 1)            // counted as at t + 1 min
        d.add(2, atMilliseconds: t + minuteMs)     // the same minute
        #expect(d.buckets == [RollingDailyCount.Bucket(minute: t / minuteMs + 1, count: 5)])
        #expect(d.count(atMilliseconds: t + 1 + dayMs) == 5)   // exact: 2 (the 3 have left); kept to the minute's end
        #expect(d.count(atMilliseconds: t + minuteMs + dayMs - 1) == 5)
        #expect(d.count(atMilliseconds: t + minuteMs + dayMs) == 0)
    }

    @Test func addsFromAClockAheadCountAtOnce() {
        var d = RollingDailyCount()
        d.add(4, atMilliseconds: t + 10 * minuteMs)
        #expect(d.count(atMilliseconds: t) == 4)
        #expect(d.count(atMilliseconds: t - dayMs) == 4)
    }

    @Test func negativeAndZeroTimesRoundUpToTheirMinute() {
        #expect(RollingDailyCount.minute(of: 0) == 0)
        #expect(RollingDailyCount.minute(of: 1) == 1)
        #expect(RollingDailyCount.minute(of: 60_000) == 1)
        #expect(RollingDailyCount.minute(of: 60_001) == 2)
        #expect(RollingDailyCount.minute(of: -1) == 0)
        #expect(RollingDailyCount.minute(of: -60_000) == -1)
        #expect(RollingDailyCount.minute(of: -60_001) == -1)
    }

    @Test func nothingOrLessIsNotCounted() {
        var d = RollingDailyCount()
        d.add(0, atMilliseconds: t)
        d.add(-5, atMilliseconds: t)
        #expect(d.buckets.isEmpty)
        #expect(d == RollingDailyCount())
    }

    @Test func threeDaysOfTrafficKeepAtMost1441BucketsAndNeverUndercount() {
        var d = RollingDailyCount()
        var adds: [(Int64, Int)] = []
        // Two recipients every minute, half a minute off the whole minute, for three days.
        for k in 0..<(3 * 1440) {
            let at = t + Int64(k) * minuteMs + 30_000
            d.add(2, atMilliseconds: at)
            adds.append((at, 2))
            #expect(d.buckets.count <= RollingDailyCount.maxBuckets)
            if k % 97 == 0 || k > 3 * 1440 - 3 {
                let exact = adds.filter { $0.0 > at - dayMs && $0.0 <= at }.reduce(0) { $0 + $1.1 }
                let ours = d.count(atMilliseconds: at)
                #expect(ours >= exact)
                #expect(ours <= exact + 2)   // one minute's worth late at most
            }
        }
        #expect(d.buckets.count == RollingDailyCount.maxBuckets)   // 24 h of minutes + the one in progress
    }

    /// Another machine 5 minutes ahead adds to the same mailbox: the buckets stay bounded and the
    /// count follows the traffic (it neither grows without end nor loses more than the lead).
    @Test func aClockAheadKeepsTheBoundAndTheCountFalls() {
        var d = RollingDailyCount()
        let lead = 5 * minuteMs
        for k in 0..<(3 * 1440) {
            let at = t + Int64(k) * minuteMs + 30_000
            d.add(1, atMilliseconds: at)
            d.add(1, atMilliseconds: at + lead)
            #expect(d.buckets.count <= RollingDailyCount.maxBuckets)
        }
        let end = t + Int64(3 * 1440 - 1) * minuteMs + 30_000
        let c = d.count(atMilliseconds: end)
        #expect(c <= 2 * 1441 + 10)
        #expect(c >= 2 * 1440 - 2 * 5)
        // Once the traffic stops, everything leaves within a day (plus the lead and a minute).
        #expect(d.count(atMilliseconds: end + lead + dayMs + minuteMs) == 0)
    }

    @Test func aDayLaterOnlyTheNewBucketIsKept() {
        var d = RollingDailyCount()
        d.add(5, atMilliseconds: t)
        d.add(1, atMilliseconds: t + dayMs)
        #expect(d.buckets == [RollingDailyCount.Bucket(minute: (t + dayMs) / minuteMs, count: 1)])
    }

    @Test func outOfOrderAddsLandInTheirMinute() {
        var d = RollingDailyCount()
        d.add(1, atMilliseconds: t + 5 * minuteMs)
        d.add(2, atMilliseconds: t + 2 * minuteMs)
        d.add(3, atMilliseconds: t + 5 * minuteMs)
        d.add(4, atMilliseconds: t + 3 * minuteMs)
        let m = t / minuteMs
        #expect(d.buckets.map(\.minute) == [m + 2, m + 3, m + 5])
        #expect(d.buckets.map(\.count) == [2, 4, 4])
    }

    @Test func whenRoomNamesTheTimeEnoughHaveLeft() {
        var d = RollingDailyCount()
        d.add(4, atMilliseconds: t)
        d.add(3, atMilliseconds: t + 60 * minuteMs)
        d.add(2, atMilliseconds: t + 120 * minuteMs)
        let now = t + 180 * minuteMs
        #expect(d.count(atMilliseconds: now) == 9)
        let cases: [(n: Int, fits: Bool, at: Int64?)] = [
            (0, true, now),
            (1, true, now),
            (2, false, t + dayMs),                        // 1 must leave: the first bucket
            (5, false, t + dayMs),                        // 4 must leave: still the first bucket
            (6, false, t + 60 * minuteMs + dayMs),        // 5 must leave: the second too
            (8, false, t + 60 * minuteMs + dayMs),
            (9, false, t + 120 * minuteMs + dayMs),
            (10, false, t + 120 * minuteMs + dayMs),      // all 9 must leave
            (11, false, nil),                             // never: more than the limit
        ]
        for c in cases {
            let r = d.whenRoom(for: c.n, limit: 10, atMilliseconds: now)
            #expect(r.fits == c.fits, "n=\(c.n)")
            #expect(r.at == c.at, "n=\(c.n)")
            // At the time named, they do fit, and a millisecond before they do not.
            if !c.fits, let at = c.at {
                #expect(d.whenRoom(for: c.n, limit: 10, atMilliseconds: at).fits)
                #expect(!d.whenRoom(for: c.n, limit: 10, atMilliseconds: at - 1).fits)
            }
        }
    }

    @Test func whenRoomWithALimitOfZeroIsNever() {
        let d = RollingDailyCount()
        #expect(d.whenRoom(for: 1, limit: 0, atMilliseconds: t) == (false, nil))
        #expect(d.whenRoom(for: 1, limit: 1, atMilliseconds: t) == (true, t))
    }

    @Test func restoredBucketsAreSortedMergedAndBounded() {
        let restored = RollingDailyCount(buckets: [
            .init(minute: 9, count: 1), .init(minute: 3, count: 2), .init(minute: 9, count: 4), .init(minute: 5, count: 0),
        ])
        #expect(restored.buckets == [.init(minute: 3, count: 2), .init(minute: 9, count: 5)])

        var d = RollingDailyCount()
        for k in 0..<100 { d.add(k + 1, atMilliseconds: t + Int64(k) * 7 * minuteMs) }
        #expect(RollingDailyCount(buckets: d.buckets) == d)

        // More than 1441 minutes: those 1441 or more older than the newest have left by its clock.
        let many = (0..<2000).map { RollingDailyCount.Bucket(minute: Int64($0), count: 1) }
        let capped = RollingDailyCount(buckets: many)
        #expect(capped.buckets.count == RollingDailyCount.maxBuckets)
        #expect(capped.buckets.first == .init(minute: 559, count: 1))
        #expect(capped.buckets.last == .init(minute: 1999, count: 1))
    }
}
