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

struct FileIdentity: Equatable {
    var device: UInt64
    var inode: UInt64

    static func of(_ path: String) -> FileIdentity? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return FileIdentity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
    }
}

/// The database's files as they were when taken (paths built once: a check is three `stat`
/// calls and nothing else).
public struct OpenedFiles {
    let files: [(path: String, identity: FileIdentity?)]

    /// What is wrong, if a file differs from when it was taken (nil: they are the same). A
    /// file that was not there then (created since) is fine.
    public func change() -> String? {
        for f in files {
            guard let expected = f.identity else { continue }
            switch FileIdentity.of(f.path) {
            case expected?: continue
            case nil: return "\(f.path) was deleted while the server has it open"
            case _?: return "\(f.path) was replaced while the server has it open"
            }
        }
        return nil
    }
}

extension Database {
    /// The database, its WAL and its shared-memory index, as they are now.
    public func openedFiles() -> OpenedFiles {
        OpenedFiles(files: [path, path + "-wal", path + "-shm"].map { ($0, FileIdentity.of($0)) })
    }
}
