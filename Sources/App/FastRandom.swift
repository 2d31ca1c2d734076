/// FastRandom: xoshiro256** seeded once from the system generator (getrandom). Message-IDs
/// and MIME boundaries need uniqueness, not secrecy; a getrandom(2) call per 64 bits was
/// four syscalls per accepted message. Token secrets keep using the system generator.
struct FastRandom: RandomNumberGenerator {
    var s: (UInt64, UInt64, UInt64, UInt64)

    init() {
        var system = SystemRandomNumberGenerator()
        s = (system.next(), system.next(), system.next(), system.next())
        if s == (0, 0, 0, 0) { s.0 = 1 }
    }

    @inline(__always)
    static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    mutating func next() -> UInt64 {
        let result = FastRandom.rotl(s.1 &* 5, 7) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = FastRandom.rotl(s.3, 45)
        return result
    }
}
