/// Router: method + exact path (or a registered prefix, for `/api/audit/{id}`) → route
/// handler; 404 `not_found` for unknown paths, 405
/// `method_not_allowed` with `Allow` for known paths and other methods (SPEC §4).
/// HEAD is answered wherever GET is (RFC 9110 §9.3.2); the driver drops the body.
import APIDocument
import HTTP1
import SendAPI
import HTTPServer

public typealias RouteHandler = (HTTPRequest, Responder) -> HandlerResult
/// A route's checks on the head alone (authentication, Content-Type): a response refuses
/// the request before its body is read (`HTTPHandler.checkBeforeBody`).
public typealias HeadCheck = (RequestHead) -> HeadDecision

public final class Router: HTTPHandler {
    struct Route {
        var index: Int
        var methods: [String: RouteHandler] = [:]
        var headChecks: [String: HeadCheck] = [:]
        var allowed: [String] {
            var m = Array(methods.keys)
            if methods["GET"] != nil && methods["HEAD"] == nil { m.append("HEAD") }
            return m.sorted()
        }
    }

    var routes: [String: Route] = [:]
    /// Route labels by index (the path, or the prefix with `{id}`), for metrics.
    public private(set) var labels: [String] = []
    /// Prefix routes (`/api/audit/` for `/api/audit/{id}`), tried after the exact paths.
    var prefixes: [(prefix: String, route: Route)] = []

    public init() {}

    public func add(_ method: String, _ path: String, headCheck: HeadCheck? = nil, _ handler: @escaping RouteHandler) {
        if routes[path] == nil {
            routes[path] = Route(index: labels.count)
            labels.append(path)
        }
        routes[path]!.methods[method] = handler
        if let headCheck { routes[path]!.headChecks[method] = headCheck }
    }

    /// Every path that starts with `prefix` and has more after it.
    public func addPrefix(_ method: String, _ prefix: String, _ handler: @escaping RouteHandler) {
        if let i = prefixes.firstIndex(where: { $0.prefix == prefix }) {
            prefixes[i].route.methods[method] = handler
        } else {
            var r = Route(index: labels.count)
            labels.append(prefix + "{id}")
            r.methods[method] = handler
            prefixes.append((prefix, r))
        }
    }

    func route(for path: String) -> Route? {
        if let r = routes[path] { return r }
        for p in prefixes where path.utf8.count > p.prefix.utf8.count && path.hasPrefix(p.prefix) { return p.route }
        return nil
    }

    public func routeIndex(for head: RequestHead) -> Int {
        route(for: head.path)?.index ?? -1
    }

    /// A request with a body to an unknown path or with a method the path does not take is
    /// answered on its head; so is one its route's head check refuses.
    public func checkBeforeBody(_ head: RequestHead) -> HeadDecision {
        switch resolve(head) {
        case .failure(let e): return .refuse(e.response)
        case .success(let (route, _)): return route.headChecks[head.method]?(head) ?? .proceed(approval: nil)
        }
    }

    public func handle(_ request: HTTPRequest, responder: Responder) -> HandlerResult {
        switch resolve(request.head) {
        case .failure(let e): return .respond(e.response)
        case .success(let (_, handler)): return handler(request, responder)
        }
    }

    /// The route and handler for a head, or its 404 / 405 (HEAD falls back to GET).
    func resolve(_ head: RequestHead) -> Result<(Route, RouteHandler), APIError> {
        guard let route = route(for: head.path) else { return .failure(APIError.notFound(head.method, head.path)) }
        let method = head.method
        guard let h = route.methods[method] ?? (method == "HEAD" ? route.methods["GET"] : nil) else {
            return .failure(APIError.methodNotAllowed(method, allowed: route.allowed))
        }
        return .success((route, h))
    }

    public func errorResponse(for error: ParseError) -> HTTPResponse {
        APIError.protocolError(error).response
    }
}

public enum CoreRoutes {
    static let healthBody = Array("{\"ok\":true}".utf8)
    static let jsonHeaders = HTTPHeaders([(name: "Content-Type", value: "application/json")])

    /// `GET /healthz` → `200 {"ok":true}`, no authentication. `GET /`: a browser (it asks for
    /// `text/html`) is sent to the audit page; an API client gets the usual JSON 404.
    /// `GET /favicon.ico`: 204 (the page's icon is inline; this only quiets the browser's probe).
    public static func install(on router: Router) {
        router.add("GET", "/healthz") { _, _ in
            .respond(HTTPResponse(status: 200, headers: jsonHeaders, body: healthBody))
        }
        // The OpenAPI document (APIDocument), no authentication; it changes only with the binary.
        let openAPI = HTTPResponse(status: 200, headers: HTTPHeaders([(name: "Content-Type", value: "application/json"),
                                                                      (name: "Cache-Control", value: "public, max-age=3600")]), body: APIDocument.json)
        router.add("GET", "/api/openapi.json") { _, _ in .respond(openAPI) }
        router.add("GET", "/") { request, _ in
            guard let accept = request.head.headers["Accept"], accept.lowercased().contains("text/html") else {
                return .respond(APIError.notFound(request.head.method, "/").response)
            }
            return .respond(HTTPResponse(status: 303, headers: HTTPHeaders([(name: "Location", value: "/audit"), (name: "Content-Length", value: "0")]),
                                         body: []))
        }
        router.add("GET", "/favicon.ico") { _, _ in
            .respond(HTTPResponse(status: 204, headers: HTTPHeaders([(name: "Cache-Control", value: "max-age=86400")]), body: []))
        }
    }
}
