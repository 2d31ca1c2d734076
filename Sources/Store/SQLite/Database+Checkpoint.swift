/// WAL checkpoints: the commit hook that decides when one is due, and the PASSIVE checkpoint
/// itself (copying committed frames into the database file and syncing it, without ever waiting
/// for or blocking the writer).
import CSQLite

/// Called after every commit with the WAL's frame count (sqlite3_wal_hook). Installing it
/// replaces SQLite's own autocheckpoint (the two are one hook).
public protocol WALCommitObserver: AnyObject {
    func walCommitted(frames: Int32, database: Database)
}

private final class WALHookBox {
    weak var observer: WALCommitObserver?
    unowned let database: Database
    init(_ observer: WALCommitObserver, _ database: Database) {
        self.observer = observer
        self.database = database
    }
}

private let walHook: @convention(c) (UnsafeMutableRawPointer?, OpaquePointer?, UnsafePointer<CChar>?, Int32) -> Int32 = { context, _, _, frames in
    guard let context else { return SQLITE_OK }
    let box = Unmanaged<WALHookBox>.fromOpaque(context).takeUnretainedValue()
    box.observer?.walCommitted(frames: frames, database: box.database)
    return SQLITE_OK
}

extension Database {
    /// The frame count past which SQLite's default autocheckpoint runs (what `nil` restores).
    public static let defaultAutocheckpointFrames: Int32 = 1000

    /// Installs `observer` as the commit hook of this connection (nil: SQLite's autocheckpoint at
    /// its default again). The observer is held weakly; the hook's box lives as long as this
    /// connection.
    public func observeWALCommits(_ observer: WALCommitObserver?) {
        if let old = walHookBox {
            Unmanaged<WALHookBox>.fromOpaque(old).release()
            walHookBox = nil
        }
        guard let observer else {
            sqlite3_wal_autocheckpoint(db, Database.defaultAutocheckpointFrames)
            return
        }
        let box = Unmanaged.passRetained(WALHookBox(observer, self)).toOpaque()
        walHookBox = box
        sqlite3_wal_hook(db, walHook, box)
    }

    /// A PASSIVE checkpoint: as many frames as no reader still needs, without waiting for any
    /// lock (another checkpoint running: nothing is done). Returns the WAL's frames and how many
    /// of them are now in the database file.
    @discardableResult
    public func checkpointPassive() throws(SQLiteError) -> (frames: Int32, checkpointed: Int32) {
        var frames: Int32 = 0, done: Int32 = 0
        let rc = sqlite3_wal_checkpoint_v2(db, nil, SQLITE_CHECKPOINT_PASSIVE, &frames, &done)
        if rc != SQLITE_OK && rc != SQLITE_BUSY { throw SQLiteError(db: db, code: rc, sql: "PRAGMA wal_checkpoint(PASSIVE)") }
        return (frames, done)
    }
}
