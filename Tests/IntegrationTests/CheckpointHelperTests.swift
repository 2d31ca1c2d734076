/// The WAL checkpoint helper of a SQLite server (Store's CheckpointHandOff, `store checkpointer`):
/// a child process that runs the checkpoints off the loop; the server checkpoints inline when it
/// is gone; it exits with the server however the server ends. SQLite only, on both passes.
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

@Suite(.serialized) struct CheckpointHelperTests {
    /// The server's children whose command line is the checkpointer's: every process whose
    /// parent (the fourth field of /proc/PID/stat) is the server, as pgrep -P finds them
    /// (/proc/PID/task/TID/children is documented unreliable while the process runs).
    func helpers(of pid: pid_t) -> [pid_t] {
        let all = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        let children = all.compactMap { pid_t($0) }.filter { p in
            guard let stat = try? String(contentsOfFile: "/proc/\(p)/stat", encoding: .utf8),
                  let fields = stat.split(separator: ")").last?.split(separator: " ") else { return false }
            return fields.count > 1 && pid_t(fields[1]) == pid
        }
        return children.filter { child in
            let cmdline = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(child)/cmdline"))) ?? Data()
            // (Called after announcedHelper, which waited for the exec to finish.)
            return String(decoding: cmdline, as: UTF8.self).split(separator: "\0").contains("checkpointer")
        }
    }

    /// Bytes a process passed to write calls (/proc/PID/io wchar).
    func writtenBytes(_ pid: pid_t) -> Int {
        let io = (try? String(contentsOfFile: "/proc/\(pid)/io", encoding: .utf8)) ?? ""
        return io.split(separator: "\n").first { $0.hasPrefix("wchar:") }.flatMap { Int($0.dropFirst(6).trimmingCharacters(in: .whitespaces)) } ?? -1
    }

    /// The helper the server announced ("WAL checkpoints go to a helper process (pid N)"),
    /// checked to be its child running the checkpointer.
    func announcedHelper(_ f: SendFixture) throws -> pid_t {
        let line = try f.server.waitForLine(containing: "WAL checkpoints go to a helper process (pid ")
        let pid = try #require(line.split(separator: "(pid ").last.flatMap { pid_t($0.prefix { $0.isNumber }) }, "\(line)")
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        #expect(stat.split(separator: ")").last?.split(separator: " ").dropFirst().first.flatMap { pid_t($0) } == f.server.pid, "\(stat)")
        // posix_spawn returns once the child's execve has let go of the parent's memory, a moment
        // before the new program's arguments are in place: until then its cmdline reads empty.
        var cmdline = Data()
        try waitUntil("the helper's exec") {
            cmdline = try Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))
            return !cmdline.isEmpty
        }
        #expect(String(decoding: cmdline, as: UTF8.self).split(separator: "\0").contains("checkpointer"), "\(f.server.stderrLines)")
        return pid
    }

    /// Gone, or a zombie nobody reaps (a container's init may not).
    func exited(_ pid: pid_t) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return true }
        return stat.split(separator: ")").last?.split(separator: " ").first == "Z"
    }

    /// The frames in the WAL now (mxFrame of the wal-index header in the -shm file, offset 16,
    /// native byte order). Not the -wal file's size: SQLite reuses the file from its start
    /// after a checkpoint and never shrinks it, so its size is the largest the WAL ever was.
    func walFrames(_ db: String) throws -> UInt32 {
        let shm = try Data(contentsOf: URL(fileURLWithPath: db + "-shm"))
        guard shm.count >= 20 else { return 0 }
        return shm.subdata(in: 16..<20).withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
    }

    func send(_ f: SendFixture, _ n: Int) throws {
        let c = try f.connect()
        for i in 0..<n {
            let r = try f.post(directBody.replacingOccurrences(of: "marcus@", with: "m\(i)-\(UUID().uuidString.prefix(8))@"), on: c)
            #expect(r.status == 200, "\(r.text)")
        }
        c.close()
    }

    @Test func theHelperCheckpointsAndTheServerTakesOverWhenItIsGone() throws {
        let dir = makeTempDir()
        let f = try SendFixture(extraArgs: ["--sqlite-checkpoints", "helper"], store: dir + "/tickiti.db")
        // One commit per request: ~8 WAL frames each, past the 1 000 that start the helper and
        // hand it a checkpoint.
        try send(f, 300)
        let helper = try announcedHelper(f)
        #expect(helpers(of: f.server.pid) == [helper])
        // The helper copies frames into the database file (its only writes) when asked.
        try waitUntil("the helper's first checkpoint") { writtenBytes(helper) >= 4096 }

        kill(helper, SIGKILL)
        try waitUntil("the helper's death") { exited(helper) }
        try send(f, 300)
        _ = try f.server.waitForLine(containing: "checkpoint helper (pid \(helper)) is gone")
        // Inline from then on: the WAL stays within SQLite's own bound (1 000 frames and the
        // commit that crossed it), not growing with every message.
        let frames = try walFrames(dir + "/tickiti.db")
        #expect(frames > 0 && frames < 1_100, "\(frames) frames in the WAL")
        #expect(try f.auditCount() == 600)
        f.server.signal(SIGTERM)
        #expect(try f.server.waitForExit() == 0)
    }

    @Test func theHelperEndsWithTheServerHoweverItEnds() throws {
        let dir = makeTempDir()
        let f = try SendFixture(extraArgs: ["--sqlite-checkpoints", "helper"], store: dir + "/tickiti.db")
        try send(f, 300)
        let helper = try announcedHelper(f)
        f.server.signal(SIGTERM)
        #expect(try f.server.waitForExit() == 0)
        // A clean stop waits for it.
        #expect(exited(helper))

        try f.start(extraArgs: ["--sqlite-checkpoints", "helper"])
        try send(f, 300)
        let second = try announcedHelper(f)
        f.server.signal(SIGKILL)
        _ = try f.server.waitForExit()
        // The pipe closes with the server: the helper reads end of file and exits.
        try waitUntil("the helper's exit after kill -9 of the server") { exited(second) }
        // And a restarted server finds every accepted message.
        try f.start(extraArgs: ["--sqlite-checkpoints", "helper"])
        #expect(try f.auditCount() == 600)
    }

    /// The default is the helper, started with the first checkpoint due: a server that has
    /// written less than 1 000 WAL frames runs none.
    @Test func theDefaultStartsTheHelperWithTheFirstCheckpoint() throws {
        let dir = makeTempDir()
        let f = try SendFixture(store: dir + "/tickiti.db")
        try send(f, 3)
        #expect(helpers(of: f.server.pid).isEmpty)
        #expect(f.server.count("WAL checkpoints go to a helper process") == 0)
        try send(f, 300)
        let helper = try announcedHelper(f)
        try waitUntil("the helper's first checkpoint") { writtenBytes(helper) >= 4096 }
        #expect(try f.auditCount() == 303)
    }

    @Test func inlineCheckpointsStartNoHelper() throws {
        let dir = makeTempDir()
        let f = try SendFixture(extraArgs: ["--sqlite-checkpoints", "inline"], store: dir + "/tickiti.db")
        try send(f, 300)
        #expect(helpers(of: f.server.pid).isEmpty)
        #expect(f.server.count("WAL checkpoints go to a helper process") == 0)
        let (rc, out) = try run([binaryPath(), "serve", "--db", dir + "/other.db", "--sqlite-checkpoints", "sometimes"])
        #expect(rc == 64 && out.contains("--sqlite-checkpoints must be helper or inline"), "\(out)")
    }
}
