;; A component that imports a network interface hookshape does not provide:
;; loading it must fail and name the import.
(component
  (import "evil:net/socket@1.0.0" (instance
    (export "connect" (func (param "host" string) (result u32))))))
