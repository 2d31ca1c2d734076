/// IMF-fixdate (RFC 9110 §5.6.7): "Sun, 06 Nov 1994 08:49:37 GMT", from seconds since the
/// epoch, by integer arithmetic (Howard Hinnant's civil-from-days). Pure: the caller passes
/// the time in. The same RFC 5322 §3.3 date-time serves MIME's `Date:` header (zone "+0000").
public enum IMFDate {
    public static func format(epochSeconds: Int, zone: String = "GMT") -> String {
        var out: [UInt8] = []
        out.reserveCapacity(32)
        append(epochSeconds: epochSeconds, zone: zone, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    static let dayBytes = Array("SunMonTueWedThuFriSat".utf8)
    static let monthBytes = Array("JanFebMarAprMayJunJulAugSepOctNovDec".utf8)

    /// The same, appended as bytes (no string interpolation: the MIME `Date:` of every message).
    public static func append(epochSeconds: Int, zone: String, to out: inout [UInt8]) {
        let dayNumber = epochSeconds >= 0 ? epochSeconds / 86400 : (epochSeconds - 86399) / 86400
        let secs = epochSeconds - dayNumber * 86400
        let weekday = ((dayNumber % 7) + 7 + 4) % 7   // 1970-01-01 was a Thursday
        // civil_from_days
        let z = dayNumber + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        var year = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        if month <= 2 { year += 1 }
        func two(_ v: Int) { out.append(UInt8(48 + v / 10)); out.append(UInt8(48 + v % 10)) }
        out.append(contentsOf: dayBytes[weekday * 3 ..< weekday * 3 + 3])
        out.append(0x2C); out.append(0x20)
        two(day)
        out.append(0x20)
        out.append(contentsOf: monthBytes[(month - 1) * 3 ..< month * 3])
        out.append(0x20)
        if (0...9999).contains(year) {
            two(year / 100); two(year % 100)
        } else {
            out.append(contentsOf: String(year).utf8)
        }
        out.append(0x20)
        two(secs / 3600); out.append(0x3A); two(secs / 60 % 60); out.append(0x3A); two(secs % 60)
        out.append(0x20)
        out.append(contentsOf: zone.utf8)
    }
}
