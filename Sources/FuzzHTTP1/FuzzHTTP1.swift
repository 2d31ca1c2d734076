/// libFuzzer target for the HTTP/1.1 request parser.
///
/// Beyond "no crash", it checks the parser's contract on every input: consumed ≤ input;
/// body ranges inside the consumed bytes; no call that consumes nothing and is neither
/// `.needMore` nor an error twice in a row (no livelock); and the same events — heads,
/// concatenated body bytes, ends, error status — whether the input arrives whole or split
/// at a point derived from the data (resumability).
/// Build and run: `Tests/Scripts/fuzz-http1 SECONDS` (toolchain notes §6, recipe A).
import HTTP1
#if canImport(Glibc)
import Glibc
#endif

struct Outcome: Equatable {
    var heads: [RequestHead] = []
    var body: [UInt8] = []
    var ends = 0
    var error: Int?
}

/// Feeds `chunks` one after another the way the connection driver does.
func run(_ chunks: [ArraySlice<UInt8>], limits: HTTPLimits) -> Outcome {
    var parser = RequestParser(limits: limits)
    var buffer: [UInt8] = []
    var outcome = Outcome()
    for chunk in chunks {
        buffer.append(contentsOf: chunk)
        var idle = 0
        loop: while true {
            let (consumed, event) = parser.parse(buffer)
            precondition(consumed >= 0 && consumed <= buffer.count, "consumed \(consumed) of \(buffer.count)")
            switch event {
            case .needMore:
                buffer.removeFirst(consumed)
                break loop
            case .head(let h):
                outcome.heads.append(h)
            case .body(let r):
                precondition(r.lowerBound >= 0 && r.upperBound <= consumed && !r.isEmpty, "body range \(r) outside consumed \(consumed)")
                outcome.body.append(contentsOf: buffer[r])
            case .end:
                outcome.ends += 1
            case .error(let e):
                precondition([400, 413, 431, 501, 505].contains(e.status), "unexpected status \(e.status)")
                outcome.error = e.status
                return outcome
            }
            if consumed == 0 { idle += 1 } else { idle = 0 }
            precondition(idle < 3, "parser made no progress")
            buffer.removeFirst(consumed)
            precondition(outcome.heads.count >= outcome.ends)
        }
    }
    return outcome
}

func fuzzOne(_ data: UnsafeBufferPointer<UInt8>) -> Int32 {
    let bytes = Array(data)
    guard !bytes.isEmpty else { return 0 }
    // Small limits so the 431/413 paths are reached by short inputs too.
    let limits = HTTPLimits(maxHeadBytes: 256 + Int(bytes[0]) * 4, maxBodyBytes: 64 + Int(bytes[bytes.count / 2]) * 64)
    let whole = run([bytes[...]], limits: limits)
    let split = (Int(bytes[bytes.count - 1]) * 7919) % bytes.count
    let halves = run([bytes[..<split], bytes[split...]], limits: limits)
    precondition(whole == halves, """
        split at \(split) changed the outcome: whole: \(whole.heads.count) heads, \(whole.body.count) body bytes, \
        \(whole.ends) ends, error \(whole.error.map(String.init) ?? "none"); split: \(halves.heads.count) heads, \
        \(halves.body.count) body bytes, \(halves.ends) ends, error \(halves.error.map(String.init) ?? "none")
        """)
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func LLVMFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data else { return 0 }
    return fuzzOne(UnsafeBufferPointer(start: data, count: size))
}

#if !FUZZING
@main
struct FuzzMain {
    /// Without libFuzzer: runs the check over files given as arguments (crash reproducers).
    static func main() {
        let args = CommandLine.arguments.dropFirst()
        if args.isEmpty {
            print("build with: swift build --product FuzzHTTP1 --sanitize=fuzzer --sanitize=address -Xswiftc -DFUZZING (see Tests/Scripts/fuzz-http1)")
            return
        }
        for path in args {
            guard let f = fopen(path, "rb") else { continue }
            var bytes: [UInt8] = []
            var buf = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = fread(&buf, 1, buf.count, f)
                if n <= 0 { break }
                bytes.append(contentsOf: buf[0..<n])
            }
            fclose(f)
            _ = bytes.withUnsafeBufferPointer { fuzzOne($0) }
            print("ok \(path)")
        }
    }
}
#endif
