package contract

// Ping answers with the pool, identity and host of the worker that took it: the
// Ping workflow sends one to every pool (activities/health serves it).
var Ping = Activity[PingRequest, PingAnswer]{Name: "Ping"}

// PingRequest is the input of Ping.
type PingRequest struct {
	// Message is echoed back unchanged.
	Message string `json:"message"`
}

// PingAnswer is one pool's answer to a ping.
type PingAnswer struct {
	// Pool is the pool of the worker that answered, as the worker was started with.
	Pool string `json:"pool"`
	// TaskQueue is the task queue the activity was taken from.
	TaskQueue string `json:"taskQueue"`
	// Identity is the answering worker's Temporal identity.
	Identity string `json:"identity"`
	// Host is the host name of the machine the worker runs on.
	Host string `json:"host"`
	// Message is the request's message, echoed.
	Message string `json:"message"`
}
