/// HTTPHeaders: header fields in the order received (or to be sent), names as written.
/// Lookups compare names ASCII-case-insensitively (RFC 9110 §5.1) without allocating.
public struct HTTPHeaders: Sendable, Equatable, Sequence {
    public typealias Element = (name: String, value: String)
    var fields: [Element]

    public init(_ pairs: [(name: String, value: String)] = []) {
        fields = pairs
    }

    public var count: Int { fields.count }

    public subscript(name: String) -> String? {
        for f in fields where asciiCaseInsensitiveEquals(f.name, name) { return f.value }
        return nil
    }

    public func values(for name: String) -> [String] {
        fields.filter { asciiCaseInsensitiveEquals($0.name, name) }.map(\.value)
    }

    /// How many fields carry `name` (without allocating).
    public func occurrences(of name: String) -> Int {
        var n = 0
        for f in fields where asciiCaseInsensitiveEquals(f.name, name) { n += 1 }
        return n
    }

    public func contains(_ name: String) -> Bool {
        fields.contains { asciiCaseInsensitiveEquals($0.name, name) }
    }

    public mutating func add(name: String, value: String) {
        fields.append((name, value))
    }

    public func makeIterator() -> IndexingIterator<[Element]> {
        fields.makeIterator()
    }

    public static func == (a: HTTPHeaders, b: HTTPHeaders) -> Bool {
        a.fields.count == b.fields.count
            && zip(a.fields, b.fields).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }
}

/// ASCII case-insensitive comparison (header names and tokens are ASCII).
@inlinable
public func asciiCaseInsensitiveEquals(_ a: String, _ b: String) -> Bool {
    // Header look-ups compare a name against every field: most differ in length (O(1) for
    // native strings), so those never walk their bytes. The rest compare as contiguous bytes
    // (native and small strings both have them; the UTF-8 view's iterator checks each step).
    guard a.utf8.count == b.utf8.count else { return false }
    let contiguous = a.utf8.withContiguousStorageIfAvailable { pa in
        b.utf8.withContiguousStorageIfAvailable { pb in asciiCaseInsensitiveEquals(pa, pb) }
    }
    if let contiguous, let result = contiguous { return result }
    return asciiCaseInsensitiveEquals(Array(a.utf8), Array(b.utf8))
}

/// The same over bytes: equal, or differing only in the case of ASCII letters.
@inlinable
public func asciiCaseInsensitiveEquals<A: RandomAccessCollection<UInt8>, B: RandomAccessCollection<UInt8>>(_ a: A, _ b: B) -> Bool
where A.Index == Int, B.Index == Int {
    guard a.count == b.count else { return false }
    var i = a.startIndex, j = b.startIndex
    while i < a.endIndex {
        let x = a[i], y = b[j]
        if x != y {
            // Only a letter and its other case differ in exactly the 0x20 bit.
            let lx = x | 0x20
            guard x ^ y == 0x20, lx >= 97, lx <= 122 else { return false }
        }
        i += 1
        j += 1
    }
    return true
}
