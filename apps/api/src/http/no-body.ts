import { Body } from '@nestjs/common';
import { ApiBody } from '@nestjs/swagger';

/**
 * The body of a route that takes none: nothing, or an empty JSON object. As the route's body type it
 * is judged by the global ValidationPipe like every other body, so a property is refused (400
 * VALIDATION_FAILED naming it, by `forbidNonWhitelisted`), never ignored: a client that believes the
 * route takes a field (an `amount` on a refund) learns that it does not, before anything is done.
 * JSON that is not an object (null, [], 1) is refused before, by the body parser (`notAnObject`).
 */
export class EmptyBody {}

/**
 * The body parameter of a route that takes none, typed `EmptyBody` (the ValidationPipe judges a body
 * by its parameter's declared type). The contract says the body is optional and empty, so the
 * generated client needs none.
 */
export function NoBody(): ParameterDecorator {
  return (target, key, index) => {
    const types = Reflect.getMetadata('design:paramtypes', target, key ?? '') as readonly unknown[] | undefined;
    if (key === undefined || types?.[index] !== EmptyBody) throw new Error(`@NoBody() needs a parameter of a method typed EmptyBody (${String(key)}, parameter ${index})`);
    Body()(target, key, index);
    const method = Object.getOwnPropertyDescriptor(target, key);
    if (method === undefined) throw new Error(`@NoBody(): no method ${String(key)}`);
    ApiBody({
      required: false,
      description: 'None: this route takes no body. An empty object is accepted; any property is refused (400 VALIDATION_FAILED naming it), and so is any JSON value that is not an object, such as null or [] (naming the body, rule isObject).',
      schema: { type: 'object', additionalProperties: false, maxProperties: 0 },
    })(target, key, method);
  };
}
