/// Database+FileIdentity: noticing that the database's files were deleted or replaced under a
/// running server (an operator's `rm tickiti.db-wal`, a restore over the live file).
///
/// SQLite keeps using the descriptors it opened: commits to an unlinked WAL succeed, and every
/// other process (an admin command, the next start) sees different files — acknowledged
/// messages and created tokens vanish after the next crash. So the server compares the
/// (device, inode) of the database, its `-wal` and its `-shm` with those it opened, before
/// each commit, and stops accepting (503) with one loud line when they differ.
#if canImport(Glibc)
import Glibc
#endif

public struct FileIdentity: Equatable, Sendable {
    var device: UInt64
    var inode: UInt64

    static func of(_ path: String) -> FileIdentity? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return FileIdentity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
    }
}

extension Database {
    /// The files as they are now: the database, its WAL and its shared-memory index.
    public var fileIdentities: [FileIdentity?] {
        [FileIdentity.of(path), FileIdentity.of(path + "-wal"), FileIdentity.of(path + "-shm")]
    }

    /// What is wrong, if the files differ from `expected` (nil: they are the ones we opened).
    public func filesChanged(since expected: [FileIdentity?]) -> String? {
        let now = fileIdentities
        let names = [path, path + "-wal", path + "-shm"]
        for (i, name) in names.enumerated() where now[i] != expected[i] {
            if expected[i] == nil { continue }   // not there at start (created since): fine
            return now[i] == nil ? "\(name) was deleted while the server has it open" : "\(name) was replaced while the server has it open"
        }
        return nil
    }
}
