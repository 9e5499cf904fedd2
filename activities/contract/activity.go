package contract

// Activity names one activity together with its input and output types. Workflows
// call an activity through its handle (workflows.Execute(ctx, contract.BuildVariant,
// in)), so a payload of the wrong type fails to compile and "go to definition" leads
// from the call to the handle here; the workers register the implementations under
// Name (the method name of the activities struct that serves it).
type Activity[In, Out any] struct {
	// Name is the activity type name, as Temporal records it in histories.
	Name string
}

// String returns the activity's name.
func (a Activity[In, Out]) String() string { return a.Name }

// Nothing is the output of an activity that returns only an error.
type Nothing struct{}
