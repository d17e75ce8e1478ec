;; A transformer component with four linear memories, one per core module
;; (as composed components have), whose `transform` grows the three extra
;; memories by `GROW_PAGES` 64 KiB pages each and then skips with "grew
;; four memories". Each memory alone stays within a 4 MiB cap; together they
;; do not, so the call's one memory budget must stop it. Rust cannot emit
;; this, hence the hand-written text.
(component
  (core module $Extra
    (memory (export "memory") 0)
    (func (export "grow") (param $pages i32) (result i32)
      (memory.grow (local.get $pages))))
  (core instance $extra1 (instantiate $Extra))
  (core instance $extra2 (instantiate $Extra))
  (core instance $extra3 (instantiate $Extra))

  (core module $Main
    (import "extra1" "grow" (func $grow1 (param i32) (result i32)))
    (import "extra2" "grow" (func $grow2 (param i32) (result i32)))
    (import "extra3" "grow" (func $grow3 (param i32) (result i32)))
    (memory (export "memory") 1)
    (data (i32.const 16) "grew four memories")
    (global $next (mut i32) (i32.const 1024))

    ;; A bump allocator for the host's copies of the arguments: it never
    ;; frees, growing memory 0 when it runs out.
    (func (export "realloc")
      (param $old i32) (param $old_size i32) (param $align i32) (param $size i32)
      (result i32)
      (local $ptr i32) (local $end i32)
      (local.set $ptr
        (i32.and
          (i32.add (global.get $next) (i32.sub (local.get $align) (i32.const 1)))
          (i32.sub (i32.const 0) (local.get $align))))
      (local.set $end (i32.add (local.get $ptr) (local.get $size)))
      (if (i32.gt_u (local.get $end) (i32.mul (memory.size) (i32.const 65536)))
        (then
          (if (i32.eq
                (memory.grow
                  (i32.add
                    (i32.shr_u
                      (i32.sub (local.get $end) (i32.mul (memory.size) (i32.const 65536)))
                      (i32.const 16))
                    (i32.const 1)))
                (i32.const -1))
            (then unreachable))))
      (global.set $next (local.get $end))
      (local.get $ptr))

    ;; GROW_PAGES: 32 pages (2 MiB) per extra memory.
    (func (export "transform") (param $args i32) (result i32)
      (if (i32.eq (call $grow1 (i32.const 32)) (i32.const -1)) (then unreachable))
      (if (i32.eq (call $grow2 (i32.const 32)) (i32.const -1)) (then unreachable))
      (if (i32.eq (call $grow3 (i32.const 32)) (i32.const -1)) (then unreachable))
      ;; ok(skip("grew four memories")) at 64: result tag, outcome tag, string.
      (i32.store8 (i32.const 64) (i32.const 0))
      (i32.store8 (i32.const 68) (i32.const 1))
      (i32.store (i32.const 72) (i32.const 16))
      (i32.store (i32.const 76) (i32.const 18))
      (i32.const 64)))
  (core instance $main (instantiate $Main
    (with "extra1" (instance $extra1))
    (with "extra2" (instance $extra2))
    (with "extra3" (instance $extra3))))

  (type $event' (record
    (field "id" string)
    (field "tenant" string)
    (field "event-type" string)
    (field "timestamp" string)
    (field "content-type" string)
    (field "payload" (list u8))))
  (export $event "event" (type $event'))
  (type $subscription' (record
    (field "id" string)
    (field "url" string)
    (field "config" string)))
  (export $subscription "subscription" (type $subscription'))
  (type $request' (record
    (field "body" (list u8))
    (field "content-type" (option string))
    (field "headers" (list (tuple string string)))))
  (export $request "request" (type $request'))
  (type $outcome' (variant (case "deliver" $request) (case "skip" string)))
  (export $outcome "outcome" (type $outcome'))
  (func $transform
    (param "event" $event) (param "subscription" $subscription)
    (result (result $outcome (error string)))
    (canon lift (core func $main "transform")
      (memory (core memory $main "memory"))
      (realloc (core func $main "realloc"))))
  (export "transform" (func $transform)))
