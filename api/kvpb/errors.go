package kvpb

// The wire vocabulary of errors. A server attaches a
// google.rpc.ErrorInfo{Domain: ErrorDomain, Reason: Reason*} detail to every
// status it wants a client to act on; clients decide on retries from the
// reason, never from the message text.
const (
	// ErrorDomain is the ErrorInfo domain of raftkv errors.
	ErrorDomain = "raftkv"

	// ReasonNotLeader (code FailedPrecondition) means the node is not the
	// leader and did not propose anything: the request is safe to retry,
	// preferably at MetadataLeaderAddr.
	ReasonNotLeader = "NOT_LEADER"
	// ReasonNoLeader (code Unavailable) means the cluster has no known leader
	// right now and nothing was proposed: safe to retry after a backoff.
	ReasonNoLeader = "NO_LEADER"
	// ReasonOutcomeUnknown (code Unavailable) means a write was proposed but
	// its fate is unknown (leadership lost or deadline hit while in flight):
	// it may or may not be applied. Never retry it blindly.
	ReasonOutcomeUnknown = "OUTCOME_UNKNOWN"
	// ReasonInvalidArgument (code InvalidArgument) marks a request rejected
	// by validation; nothing was proposed.
	ReasonInvalidArgument = "INVALID_ARGUMENT"
	// ReasonUnsafeChange (code FailedPrecondition) means a membership change
	// was refused because it could cost the cluster its quorum; nothing
	// changed. The message says why; the request's force flag overrides it.
	ReasonUnsafeChange = "UNSAFE_CHANGE"
	// ReasonBackupInvalid (code InvalidArgument) means a backup file is not
	// a raftkv backup, is corrupt or truncated, or has a format version this
	// node does not read. Nothing was changed.
	ReasonBackupInvalid = "BACKUP_INVALID"
	// ReasonClusterMismatch (code FailedPrecondition) means a backup of
	// another cluster was to be restored without force. Nothing was changed.
	ReasonClusterMismatch = "CLUSTER_MISMATCH"
	// ReasonBackupNotFound (code NotFound) means no backup has the id.
	ReasonBackupNotFound = "BACKUP_NOT_FOUND"

	// MetadataLeaderID is the ErrorInfo metadata key for the leader's id.
	MetadataLeaderID = "leader_id"
	// MetadataLeaderAddr is the ErrorInfo metadata key for the leader's gRPC address.
	MetadataLeaderAddr = "leader_addr"

	// ForwardedHeader is the gRPC metadata key a follower sets when it
	// forwards a request to the leader. A forwarded request that reaches a
	// non-leader fails with ReasonNotLeader instead of being forwarded again.
	ForwardedHeader = "raftkv-forwarded"
)
