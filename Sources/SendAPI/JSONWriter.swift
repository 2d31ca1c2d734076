/// JSONWriter: a small streaming writer for API answers built by hand (no value tree): one
/// growing string, commas placed between members and elements, strings escaped by `JSONText`,
/// a nil string written as `null`. Pure.
public struct JSONWriter {
    public private(set) var out = ""
    private var needsComma = false

    public init(capacity: Int) { out.reserveCapacity(capacity) }

    private mutating func separate() {
        if needsComma { out += "," }
        needsComma = false
    }

    /// `{` or `[` in a value position.
    public mutating func open(_ bracket: String) {
        separate()
        out += bracket
    }

    public mutating func close(_ bracket: String) {
        out += bracket
        needsComma = true
    }

    public mutating func key(_ name: String) {
        separate()
        JSONText.appendString(name, to: &out)
        out += ":"
    }

    public mutating func add(_ name: String, _ value: String?) {
        key(name)
        if let value { JSONText.appendString(value, to: &out) } else { out += "null" }
        needsComma = true
    }

    public mutating func add(_ name: String, literal: String) {
        key(name)
        out += literal
        needsComma = true
    }

}
