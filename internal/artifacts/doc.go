// Package artifacts is a typed client for Cloudflare Artifacts ("git for
// agents"), which gives each Molecule workspace a versioned git repository
// (CONTRACT.md §18).
//
// # REST shape
//
// Cloudflare has not published the Artifacts REST reference where we can
// read it, so the paths below follow the Cloudflare v4 conventions (plural
// resource collections, POST to create, DELETE to remove, a sub-resource
// path segment for actions). Every path segment is escaped with
// url.PathEscape, and "." and ".." are refused as segments so that a repo
// name can never walk the URL path.
//
//	POST   {base}/namespaces/{ns}/repos                     CreateRepo
//	POST   {base}/namespaces/{ns}/repos/import              ImportRepo
//	GET    {base}/namespaces/{ns}/repos/{name}              GetRepo
//	DELETE {base}/namespaces/{ns}/repos/{name}              DeleteRepo
//	POST   {base}/namespaces/{ns}/repos/{name}/fork         ForkRepo
//	POST   {base}/namespaces/{ns}/repos/{name}/tokens       CreateToken
//	DELETE {base}/namespaces/{ns}/repos/{name}/tokens/{id}  RevokeToken
//
// {base} is CF_ARTIFACTS_API_URL and {ns} is CF_ARTIFACTS_NAMESPACE. Every
// request carries "Authorization: Bearer <CF_ARTIFACTS_API_TOKEN>" and, when
// it has a body, a JSON document whose field names are those of §18
// (name, description, read_only, default_branch_only, url, branch, depth,
// scope, ttl).
//
// # Responses and errors
//
// Every response is the v4 envelope
//
//	{"success": bool, "errors": [{"code": int, "message": string}],
//	 "messages": [...], "result": ...}
//
// and at most MaxResponseBytes (1 MiB) of it is read: a larger body is an
// error (ErrResponseTooLarge), never a silent truncation, so a runaway or
// hostile upstream cannot exhaust the server's memory.
//
// Failures fall into two classes, and handlers must keep them apart:
//
//   - A genuine Cloudflare client error: a 4xx status whose body is a
//     well-formed envelope with success=false. IsClientError reports it and
//     returns the status and the joined Cloudflare messages, which the
//     handler passes through to its caller.
//   - Everything else is an upstream failure that the handler answers with
//     502 "upstream service error": a 5xx, a transport failure, a redirect, a
//     body that is not JSON or not an envelope, an oversized body, a 2xx
//     with success=false or without the expected result. Any upstream text
//     is kept in APIError.Detail for server-side logs and never appears in
//     Error().
//
// Arguments that could never be valid (a bad repo name, a non-https import
// URL, an unknown token scope) are refused before any request is sent, with
// an error wrapping ErrInvalidArgument. Handlers validate first with
// ValidRepoName, ValidateImportURL and ValidScope; the client repeats the
// checks so a forgotten check cannot reach Cloudflare.
package artifacts
