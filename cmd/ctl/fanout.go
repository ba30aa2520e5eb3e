package main

import (
	"context"
	"fmt"
	"sync"
)

// endpointAnswer is one endpoint's answer to a call made to every endpoint
// (status, hash, backup list): resp or err is set.
type endpointAnswer[T any] struct {
	endpoint string
	resp     T
	err      error
}

// askEach calls call once for every endpoint of eps, concurrently, and
// returns the answers in the order of eps. call gets ctx, so every call
// shares the command's deadline.
func askEach[T any](ctx context.Context, eps []string, call func(ctx context.Context, ep string) (T, error)) []endpointAnswer[T] {
	answers := make([]endpointAnswer[T], len(eps))
	var wg sync.WaitGroup
	for i, ep := range eps {
		wg.Go(func() {
			resp, err := call(ctx, ep)
			answers[i] = endpointAnswer[T]{endpoint: ep, resp: resp, err: err}
		})
	}
	wg.Wait()
	return answers
}

// allFailed returns an error when there are answers and every one of them
// is an error; nil otherwise.
func allFailed[T any](answers []endpointAnswer[T]) error {
	for _, a := range answers {
		if a.err == nil {
			return nil
		}
	}
	if len(answers) == 0 {
		return nil
	}
	return fmt.Errorf("all %d endpoints failed; first error: %w", len(answers), answers[0].err)
}
