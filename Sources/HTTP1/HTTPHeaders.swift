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
    // native strings), so those never walk their bytes.
    guard a.utf8.count == b.utf8.count else { return false }
    var ai = a.utf8.makeIterator()
    var bi = b.utf8.makeIterator()
    while true {
        switch (ai.next(), bi.next()) {
        case (nil, nil):
            return true
        case (let x?, let y?):
            if x == y { continue }
            let lx = (x >= 65 && x <= 90) ? x | 0x20 : x
            let ly = (y >= 65 && y <= 90) ? y | 0x20 : y
            if lx != ly { return false }
        default:
            return false
        }
    }
}
