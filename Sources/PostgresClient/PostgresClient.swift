/// PostgresClient: libpq driven by the reactor (non-blocking connect, pipelined queries).
import CLibPQ
